// Allerta panel: live progress, SMS counter, recipients preview. No inline script anywhere (CSP).
"use strict";
(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const POLL_MS = 3000;

  function setField(root, name, value) {
    const el = root.querySelector('[data-field="' + name + '"]');
    if (el && value !== undefined && value !== null) el.textContent = String(value);
  }

  function poll(url, apply) {
    let stopped = false;
    async function tick() {
      if (stopped) return;
      try {
        const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
        if (response.status === 401) { stopped = true; return; }
        if (response.ok) apply(await response.json());
      } catch (e) { /* the box may be restarting: try again at the next tick */ }
      setTimeout(tick, POLL_MS);
    }
    setTimeout(tick, POLL_MS);
  }

  // Dashboard: lines, capacity, alarms and active alerts.
  function cell(content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = String(content);
    return td;
  }
  function field(name, value) {
    const td = cell(value);
    td.dataset.field = name;
    return td;
  }
  // Rows are rebuilt from the snapshot, so an alert or alarm that appeared after the page loaded
  // shows up, and one that ended goes away. Text only through textContent: it comes from users.
  function replaceRows(section, rows) {
    const tbody = section.querySelector("tbody[data-rows]");
    tbody.replaceChildren(...rows);
    section.querySelector("table").hidden = rows.length === 0;
    section.querySelector("[data-empty]").hidden = rows.length !== 0;
  }
  function alarmRow(alarm) {
    const row = document.createElement("tr");
    row.dataset.alarm = alarm.id;
    row.className = "alarm-" + alarm.kind;
    for (const value of [alarm.raised_at, alarm.kind, alarm.subject, alarm.message]) row.appendChild(cell(value));
    return row;
  }
  function alertRow(alert, drillLabel) {
    const row = document.createElement("tr");
    row.dataset.alert = alert.id;
    const link = document.createElement("a");
    link.href = alert.url;
    link.textContent = String(alert.id);
    row.appendChild(cell(link));
    const text = cell(alert.summary);
    if (alert.drill) {
      const tag = document.createElement("span");
      tag.className = "tag drill";
      tag.textContent = drillLabel;
      text.prepend(tag, " ");
    }
    if (alert.category === "information") {  // the exception on a dashboard of emergencies
      const tag = document.createElement("span");
      tag.className = "tag category-information";
      tag.textContent = alert.category_label;
      text.prepend(tag, " ");
    }
    row.appendChild(text);
    row.appendChild(field("state", alert.state_label));
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = alert.progress.percent;
    const progress = cell(bar);
    const percent = document.createElement("span");
    percent.dataset.field = "percent";
    percent.textContent = String(alert.progress.percent);
    progress.append(" ", percent, "%");
    row.appendChild(progress);
    for (const key of ["queued", "in_progress", "sent", "reached", "failed"]) row.appendChild(field(key, alert.progress[key]));
    return row;
  }

  // Help requests (web/templates/inbox/_help_requests.html): open ones as a red alarm, with the button.
  function helpRow(help, section) {
    const t = section.dataset;
    const row = document.createElement("tr");
    row.dataset.help = help.id;
    row.className = help.handled_at ? "help-handled" : "help-open";
    for (const value of [help.received_label, help.e164, help.name || "-", help.address || "-", help.zone || "-"]) row.appendChild(cell(value));
    const needs = cell(help.needs_label || "");
    if (help.vulnerable) {
      const tag = document.createElement("span");
      tag.className = "tag vulnerable";
      tag.textContent = t.tVulnerable;
      needs.prepend(tag, " ");
    }
    row.appendChild(needs);
    function linked(url, text) {
      if (!url) return text;
      const a = document.createElement("a");
      a.href = url;
      a.textContent = text;
      return a;
    }
    row.appendChild(cell(linked(help.inbound_url, help.text)));
    row.appendChild(cell(help.alert_url ? linked(help.alert_url, t.tAlert + " " + help.alert_id) : "-"));
    const action = cell("");
    if (help.handled_at) {
      action.textContent = t.tHandled + " " + help.handled_by + ", " + help.handled_label + (help.note ? ": “" + help.note + "”" : "");
    } else if (t.canHandle) {
      const form = document.createElement("form");
      form.method = "post";
      form.action = help.handled_url;
      form.className = "inline";
      for (const [name, value] of [["csrf_token", csrf()], ["next", t.next]]) {
        const input = document.createElement("input");
        input.type = "hidden"; input.name = name; input.value = value;
        form.appendChild(input);
      }
      const note = document.createElement("input");
      note.name = "note"; note.placeholder = t.tNote; note.maxLength = 2000;
      const button = document.createElement("button");
      button.type = "submit"; button.className = "danger"; button.textContent = t.tHandle;
      form.append(note, " ", button);
      action.appendChild(form);
    }
    row.appendChild(action);
    return row;
  }
  // A row someone is typing a note into is kept as it is: a redraw would throw the note away.
  function replaceHelp(section, helps) {
    if (!section || !helps) return;
    const typing = section.contains(document.activeElement) && document.activeElement.name === "note";
    if (typing) return;
    replaceRows(section, helps.map(function (help) { return helpRow(help, section); }));
    section.classList.toggle("active", helps.some(function (help) { return !help.handled_at; }));
  }

  const dashboard = document.querySelector("[data-poll]");
  if (dashboard) {
    const alarms = document.getElementById("alarms");
    const alerts = document.getElementById("active-alerts");
    poll(dashboard.dataset.poll, function (data) {
      const engine = dashboard.querySelector('[data-field="capacity_engine"]');
      engine.textContent = data.capacity_text.engine;
      engine.hidden = !data.capacity_text.engine;
      setField(dashboard, "capacity_sms", data.capacity_text.sms);
      setField(dashboard, "capacity_voice", data.capacity_text.voice);
      replaceRows(alarms, data.alarms.map(alarmRow));
      replaceHelp(document.getElementById("help-requests"), data.help_requests);
      replaceRows(alerts, data.alerts.map(function (alert) { return alertRow(alert, alerts.dataset.tDrill); }));
      for (const line of data.lines) {
        const row = dashboard.querySelector('tr[data-line="' + CSS.escape(line.label) + '"]');
        if (!row) continue;
        row.className = "state-" + line.state + (line.stale ? " stale" : "");
        setField(row, "state", line.state_label);
        setField(row, "node", line.node || "-");
        setField(row, "signal", line.signal === null ? "-" : line.signal);
        setField(row, "operator", line.operator || "-");
        setField(row, "registration", line.registration || "-");
        setField(row, "sim", line.sim || "-");
        setField(row, "today", line.sent_today + " / " + (line.daily_cap || "-"));
        setField(row, "in_use", line.in_use + " / " + (line.limit || "-"));
        setField(row, "last_error", line.last_error || "");
      }
    });
  }

  // Alert page: the pictures (server-drawn SVG from pictures.json), drawn at once and again every
  // PICTURES_MS while the alert runs. Parsed as SVG (XML), never as HTML, and imported node by node:
  // nothing in them can run, and the CSP forbids it anyway.
  const PICTURES_MS = 5000;
  const pictures = document.querySelector("[data-pictures]");
  if (pictures) {
    const svgParser = new DOMParser();
    const draw = function (holder, markup) {
      const doc = svgParser.parseFromString(markup, "image/svg+xml");
      if (doc.querySelector("parsererror") || doc.documentElement.localName !== "svg") return;
      holder.replaceChildren(document.importNode(doc.documentElement, true));
    };
    const drawPictures = async function () {
      let running = true;
      try {
        const response = await fetch(pictures.dataset.pictures, {credentials: "same-origin",
                                                                 headers: {Accept: "application/json"}});
        if (response.status === 401) return;
        if (response.ok) {
          const data = await response.json();
          for (const holder of pictures.querySelectorAll("[data-picture]")) {
            const markup = data[holder.dataset.picture];
            if (markup) draw(holder, markup);
          }
          pictures.dataset.drawn = String(Number(pictures.dataset.drawn || 0) + 1);  // for the browser tests
          running = data.running;
        }
      } catch (e) { /* the box may be restarting: try again at the next tick */ }
      if (running) setTimeout(drawPictures, PICTURES_MS);
    };
    drawPictures();
  }

  // Alert page: overall and per-channel progress.
  const alertPage = document.querySelector("[data-poll-alert]");
  if (alertPage) {
    poll(alertPage.dataset.pollAlert, function (data) {
      setField(alertPage, "state", data.state_label);
      setField(alertPage, "percent", data.progress.percent);
      const bar = document.getElementById("alert-progress");
      if (bar) bar.value = data.progress.percent;
      for (const [channel, counts] of Object.entries(data.progress.channels)) {
        const row = alertPage.querySelector('tr[data-channel="' + channel + '"]');
        if (!row) continue;
        for (const [key, value] of Object.entries(counts)) setField(row, key, value);
      }
      replaceHelp(document.getElementById("help-requests"), data.help_requests);
      const poll = document.getElementById("poll-results");
      if (poll && data.poll) {
        setField(poll, "total_votes", data.poll.votes);
        setField(poll, "changed", data.poll.changed);
        for (const option of data.poll.options) {
          const row = poll.querySelector('tr[data-option="' + option.number + '"]');
          if (!row) continue;
          setField(row, "votes", option.votes);
          setField(row, "percent", option.percent);
          const bar = row.querySelector("progress");
          if (bar) bar.value = option.percent;
        }
      }
    });
  }

  // Confirmation before destructive forms; print buttons.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", function () { window.print(); });
  }

  // Compose: live encoding and segments of every text, the typography fix, templates, recipients and ETA.
  const compose = document.getElementById("compose");
  if (!compose) return;
  const text = document.getElementById("text");
  const drill = document.getElementById("drill");
  const t = document.getElementById("counter").dataset;  // the counters' words, translated once
  const jsonHeaders = {"Content-Type": "application/json", Accept: "application/json"};

  // A voice-only text is not limited by SMS segments: the counter asks with the channels chosen.
  function channelChoice() {
    const checked = compose.querySelector('input[name="channels"]:checked');
    return checked ? checked.value : "sms";
  }

  // The poll or confirmation ends every version's SMS (in its language) and counts in its segments.
  function answers(area) {
    const confirm = document.getElementById("asks_confirmation");
    const question = document.getElementById("poll_question");
    return {
      language: area.id === "text" ? "it" : area.id.replace(/^text_/, ""),
      asks_confirmation: Boolean(confirm && confirm.checked),
      poll_question: question ? question.value : "",
      poll_options: Array.from(compose.querySelectorAll('input[name="poll_options"]'), function (input) { return input.value; }),
    };
  }

  // One counter per text area: the main text and each version in another language is an SMS of its own.
  function attachCounter(area, counter, fix) {
    let fixedText = null;
    let timer = null;
    let asked = 0;  // answers that arrive out of order must not overwrite a newer one
    async function update() {
      const mine = ++asked;
      if (!area.value.trim()) {  // nothing to count: no request (ten versions would each ask on every drill click)
        counter.textContent = ""; counter.classList.remove("warning", "error");
        fixedText = null; if (fix) fix.hidden = true;
        return;
      }
      const response = await fetch(compose.dataset.planUrl, {
        method: "POST", credentials: "same-origin", headers: {...jsonHeaders, "X-CSRFToken": csrf()},
        body: JSON.stringify({text: area.value, drill: drill.checked, channels: channelChoice(), ...answers(area)}),
      });
      if (mine !== asked) return;
      if (response.status === 401) {  // signed out meanwhile: say so instead of a silent counter
        counter.textContent = (await response.json()).message;
        counter.classList.add("error");
        return;
      }
      if (!response.ok) return;
      const plan = await response.json();
      if (mine !== asked) return;
      counter.classList.remove("warning", "error");
      if (plan.error) { counter.textContent = plan.error; counter.classList.add("error"); }
      else if (!plan.encoding) { counter.textContent = ""; }
      else {
        let line = (plan.encoding === "GSM-7" ? t.tGsm : t.tUcs) + " · " + plan.segments + " " + t.tSegments +
          " · " + plan.units + " " + t.tChars;
        if (plan.culprits.length) { line += " · " + t.tCulprits + " " + plan.culprits.join(" "); counter.classList.add("warning"); }
        if (plan.too_long) { line += " · " + t.tToolong; counter.classList.add("error"); }
        counter.textContent = line;
      }
      fixedText = plan.fixed;
      if (fix) fix.hidden = !fixedText;
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(update, 200); }
    area.addEventListener("input", schedule);
    drill.addEventListener("change", schedule);
    for (const radio of compose.querySelectorAll('input[name="channels"]')) radio.addEventListener("change", schedule);
    for (const input of compose.querySelectorAll('#asks_confirmation, #poll_question, input[name="poll_options"]')) {
      input.addEventListener(input.type === "checkbox" ? "change" : "input", schedule);
    }
    if (fix) {
      fix.addEventListener("click", function () {
        if (fixedText !== null) { area.value = fixedText; update(); recount(); }
      });
    }
    if (area.value) update();
    return update;
  }
  const counters = {};
  for (const counter of compose.querySelectorAll("[data-counter-for]")) {
    const name = counter.dataset.counterFor;
    const area = document.getElementById(name);
    if (area) counters[name] = attachCounter(area, counter, compose.querySelector('[data-fix-for="' + name + '"]'));
  }

  const template = document.getElementById("template");
  template.addEventListener("change", function () {
    const option = template.selectedOptions[0];
    if (option && option.dataset.text) { text.value = option.dataset.text; counters.text(); recount(); }
    // A template also says what kind of message it is (web/alerts.py TEMPLATE_CATEGORIES).
    if (option && option.dataset.category !== undefined) {
      compose.querySelector('[name="category"]').value = option.dataset.category;
      compose.querySelector('[name="cap_category"]').value = option.dataset.capCategory || "";
    }
  });

  // Recipients per channel and the ETA, next to the send buttons, counted again a moment after the
  // targets, channels or texts stop changing (the texts' segments change the SMS time).
  const preview = document.getElementById("preview");
  const result = document.getElementById("preview-result");
  let previewTimer = null;
  let previewAsked = 0;
  function showPreview(body) {
    const list = document.createElement("ul");
    if (body.error || body.message) {
      const item = document.createElement("li"); item.textContent = body.message || body.error; item.className = "error"; list.appendChild(item);
    } else {
      for (const channel of Object.keys(body.recipients)) {
        const eta = body.eta_seconds[channel];
        const item = document.createElement("li");
        item.dataset.channel = channel;
        // The server words the counts (web/alerts.py preview): "1 destinatario", "2 minuti".
        item.textContent = (body.channel_labels[channel] || channel) + ": " + body.recipients_text[channel] + " · " +
          preview.dataset.tEta + ": " + (eta === null ? preview.dataset.tNoline : body.eta_text[channel]);
        list.appendChild(item);
      }
    }
    // The same counts again (a change that moved nothing) leave the page alone: a redraw under the
    // pointer could move the send buttons while someone is clicking them.
    if (result.firstElementChild && result.firstElementChild.isEqualNode(list)) return;
    result.replaceChildren(list);
  }
  const hint = result.firstElementChild.cloneNode(true);  // "choose the recipients", shown again when none is
  function hasTargets() {
    if (compose.querySelector("input[name=follows]")) return true;  // a follow-up goes to the original's numbers
    if (compose.querySelector("input[name=everyone]:checked, input[name=zones]:checked, input[name=groups]:checked")) return true;
    const numbers = compose.querySelector("textarea[name=numbers]");
    return Boolean(numbers && numbers.value.trim());
  }
  async function countRecipients() {
    const mine = ++previewAsked;
    if (!hasTargets()) { result.replaceChildren(hint.cloneNode(true)); return; }
    const data = new FormData(compose);
    data.delete("audio");  // the recording is not needed to count recipients
    data.delete("recording");
    let body;
    try {
      const response = await fetch(compose.dataset.previewUrl, {
        method: "POST", credentials: "same-origin", headers: {Accept: "application/json", "X-CSRFToken": csrf()}, body: data,
      });
      body = await response.json();
    } catch (e) { return; }  // the box may be restarting: the next change counts again
    if (mine === previewAsked) showPreview(body);
  }
  function recount() { clearTimeout(previewTimer); previewTimer = setTimeout(countRecipients, 400); }
  function countsFor(target) {
    // Files and the listening controls do not change who is reached or how long it takes.
    return target.type !== "file" && target.name !== "preview_language" && target.id !== "template";
  }
  compose.addEventListener("input", function (event) { if (countsFor(event.target)) recount(); });
  compose.addEventListener("change", function (event) { if (countsFor(event.target)) recount(); });
  countRecipients();  // a form given back after a refusal, or a follow-up, already has its targets
})();
