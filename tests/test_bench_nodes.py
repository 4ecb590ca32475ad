"""`allerta bench sms --nodes N`, run for real at a small size on the tests' PostgreSQL."""
import json

import pytest

from gateway.shell.bench_nodes import bench_sms_nodes


@pytest.mark.integration
@pytest.mark.postgresql
def test_bench_two_nodes_with_one_killed_reports_rates_and_the_takeover(tmp_path, postgres_cluster):
    # 10 messages a second per modem: a node's claims ahead (5 s of its rate) leave most of the 400 to the
    # node that starts second, however late a loaded machine starts it.
    result = bench_sms_nodes(2, 2, 400, 0.1, database_url=postgres_cluster.new_database(), kill_after=1.0,
                             lease=2.0, keep=str(tmp_path / "bench"))
    json.dumps(result)   # the CLI prints it as JSON
    assert result["lost"] == 0 and result["submitted"] == 400
    assert result["engine_exit_codes"] == {"node2": 0}
    assert set(result["deliveries_by_state"]) <= {"delivered", "sent"}
    assert result["sent_twice"] <= result["flagged_possible_duplicate"]
    assert result["per_node"]["node1"]["messages"] > 0 and result["per_node"]["node2"]["messages"] > 0
    assert 0 < result["per_node"]["node2"]["ratio"] <= 1.1
    assert result["modem_bound_messages_per_minute"] == {"per_node": 1200.0, "total": 2400.0}
    kill = result["kill"]
    assert kill["node"] == "node1" and kill["held_in_flight"] > 0 and kill["resent"] == kill["held_in_flight"]
    assert kill["takeover_seconds"] > 0 and kill["definition"]


def test_nodes_need_postgresql_and_a_survivor():
    with pytest.raises(ValueError, match="SQLite is single-node"):
        bench_sms_nodes(2, 1, 10, 0.1, database_url="sqlite:///x.db")
    with pytest.raises(ValueError, match="--kill-after needs --nodes 2"):
        bench_sms_nodes(1, 1, 10, 0.1, kill_after=1.0)
