"""Docker's UpdateConfig, as the docker CLI (every field, zeros for what it leaves) and
docker-py (only what it was given) send it, into the fields of ``container.update``."""

from __future__ import annotations

from typing import Any

import pytest

from dockerapi.container_changes import update_fields
from dockerapi.errors import ApiError
from protocol.specs import RestartPolicy

# What docker 20.10's ``update --memory 128m --pids-limit 50`` sends, zeros and all.
CLI_ZEROS: dict[str, Any] = {
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": None, "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "",
    "CpusetMems": "", "Devices": None, "KernelMemory": 0, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": None,
    "Ulimits": None, "CpuCount": 0, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}


@pytest.mark.parametrize(("body", "fields"), [
    (CLI_ZEROS, {}),
    ({**CLI_ZEROS, "Memory": 128 << 20, "PidsLimit": 50}, {"memory": 128 << 20, "pids": 50}),
    ({**CLI_ZEROS, "PidsLimit": -1}, {"pids": 0}),
    ({**CLI_ZEROS, "MemorySwap": -1}, {"memory_swap": -1}),
    ({**CLI_ZEROS, "NanoCpus": 1_500_000_000}, {"millicpus": 1500}),
    ({"CpuQuota": 25000, "CpuPeriod": 100000}, {"millicpus": 250}),
    ({"CpuQuota": 50000, "CpuPeriod": 50000}, {"millicpus": 1000}),
    ({"CpuQuota": -1}, {"millicpus": 0}),
    ({"CpuShares": 512}, {"cpu_shares": 512}),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}},
     {"restart": RestartPolicy(name="on-failure", max_retries=3)}),
    ({"RestartPolicy": {"Name": "always"}}, {"restart": RestartPolicy(name="always")}),
])
def test_update_config_to_fields(body: dict[str, Any], fields: dict[str, Any]) -> None:
    assert update_fields(body) == fields


@pytest.mark.parametrize(("body", "message"), [
    ({**CLI_ZEROS, "CpusetCpus": "0"}, "CpusetCpus is not supported"),
    ({"KernelMemory": 1 << 20}, "KernelMemory is not supported"),
    ({"BlkioWeight": 300}, "BlkioWeight is not supported"),
    ({"Memory": -5}, "must not be negative"),
    ({"Memory": "lots"}, "Memory: expected a number"),
    ({"NanoCpus": 10**9, "CpuQuota": 5000}, "Conflicting options"),
    ({"CpuPeriod": 50000}, "CpuPeriod without CpuQuota"),
    ({"PidsLimit": True}, "PidsLimit: expected a number"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
     "maximum retry count cannot be used"),
    ({"RestartPolicy": "always"}, "RestartPolicy must be an object"),
])
def test_refused_update_configs(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as refused:
        update_fields(body)
    assert refused.value.status == 400 and message in refused.value.message
