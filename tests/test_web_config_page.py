"""The admin's configuration page: every key of the typed config, lists as the file writes them, secrets hidden."""
import html

from tests.web_support import client_for, make_app

VOICE = """[asterisk]
enabled = true
secret = "Segreto-123456"
[[trunks]]
name = "pstn"
dial = "PJSIP/{number}@pstn"
allowed = "prefixes"
prefixes = ["+39"]
"""


def test_the_config_page_shows_every_section_and_hides_the_secret(tmp_path):
    app = make_app(tmp_path, VOICE)
    page = html.unescape(client_for(app, "admin").get("/admin/config").get_data(as_text=True))
    assert "[[trunks]] #1" in page and "PJSIP/{number}@pstn" in page
    assert "['+39']" in page and "('+39',)" not in page
    assert "Segreto-123456" not in page and "(hidden)" in page
    assert "[retry]" in page and "max_attempts" in page
