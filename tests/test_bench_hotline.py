"""`allerta bench hotline`: callers ringing the hotline while an alert keeps the trunk busy."""
import argparse

import pytest

from gateway.shell import bench_hotline


@pytest.mark.integration
def test_bench_hotline_small_run():
    args = argparse.Namespace(command="bench", what="hotline", channels=4, inbound_reserved=1, callers=10,
                              minutes=0.5, time_scale=0.05)
    result = bench_hotline.run(args)
    assert result["calls_answered"] + result["callers_refused"] == 10
    assert result["calls_answered"] >= 1
    assert result["callers_refused_while_reserved_channels_free"] == 0
    assert result["first_prompt_seconds_real"]["p95"] is not None
    assert result["outbound_utilisation_of_its_share"] > 0.5      # loose: a shared machine
    assert result["engine_cpu_seconds_per_inbound_call"] > 0


def test_the_reserve_must_leave_outbound_a_channel():
    with pytest.raises(ValueError, match="inbound-reserved"):
        bench_hotline.bench_hotline(4, 4, 10)
