"""Devices as a user meets them: ``hera devices``, ``--device cuda:N`` and the GPU an agent really runs on.

GPUs are NVML's (the NVIDIA driver's own library), numbered in PCI bus order
as nvidia-smi numbers them; an agent on ``cuda:N`` is started with
``CUDA_VISIBLE_DEVICES`` set to that GPU's UUID, so inside it Taichi's one
CUDA device is GPU N and no other. On a host without a GPU (or without the
driver) hera lists the CPU alone, and an up on a GPU it lacks is refused in
one line before anything is installed or started. The tests marked ``gpu``
skip where no GPU is found.
"""

from __future__ import annotations

import json

import pytest

from agent_helpers import build, log_file, module_tick_world, runtime_dir, up_daemon, wait_gone
from cachekit import cache_of
from herakit import World, one_error_line


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_tick_world(tmp_path_factory, "devices")


def host_gpus() -> list[dict]:
    """The GPUs hera finds here (NVML's), asked in this process as ``hera devices`` asks."""
    from hera.devices import gpus

    return [device.model_dump() for device in gpus()]


def nothing_left(world: World, uuid: str) -> None:
    """Nothing installed (the cache not even begun), nothing started (no pid-file, socket or log)."""
    cache = cache_of(world)
    assert not cache.exists() or not list(cache.iterdir()), sorted(cache.iterdir())
    assert not runtime_dir(world).exists() or not list(runtime_dir(world).iterdir())
    assert not log_file(world, uuid).exists()


def test_devices_json_lists_the_cpu_first_and_only_the_gpus_nvml_reports(world):
    rows = json.loads(world("devices", "--json", check=True).out)
    assert rows[0]["id"] == "cpu" and rows[0]["kind"] == "cpu" and rows[0]["usable"] is True
    gpus = host_gpus()
    assert [row["id"] for row in rows[1:]] == [f"cuda:{n}" for n in range(len(gpus))]
    for row in rows[1:]:  # what NVML says of each: its identity, memory and drivers
        assert row["uuid"].startswith("GPU-") and row["pci_bus_id"] and row["memory_bytes"] > 0, row


def test_devices_in_words_says_why_there_is_no_gpu(world):
    if host_gpus():
        pytest.skip("this host has a GPU")
    shown = world("devices", check=True)
    assert shown.out.splitlines()[1].startswith("cpu") and "cuda:" not in shown.out
    assert "no NVIDIA GPU" in shown.out


@pytest.mark.parametrize("asked", ["missing", "cuda"])
def test_an_up_on_a_gpu_this_host_lacks_is_one_line_and_installs_and_starts_nothing(world, asked):
    gpus = host_gpus()
    if asked == "cuda" and gpus:
        pytest.skip("this host has cuda:0")
    device = f"cuda:{len(gpus)}" if asked == "missing" else "cuda"
    brain = build(world, f"{asked}.json")
    line = one_error_line(world("up", f"{asked}.json", "--device", device), "no device", "cuda:")
    if not gpus:
        assert "no NVIDIA GPU" in line, line
    nothing_left(world, brain.uuid)
    assert json.loads(world("agents", "--json", check=True).out) == []


def gpu_free(uuid: str) -> int:
    """NVML's free memory on the GPU with this UUID, now."""
    import pynvml

    pynvml.nvmlInit()
    try:
        return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByUUID(uuid)).free)
    finally:
        pynvml.nvmlShutdown()


@pytest.mark.gpu
def test_an_agent_on_cuda_0_runs_on_that_gpu_with_its_sized_pool(world):
    from hera.devices import pool_bytes
    from hera.family import get
    from hera.instance import read_header

    target = host_gpus()[0]
    build(world, "gpu.json")
    header = read_header(world.workdir / "gpu.json")
    family = get("tick", world.workdir)
    pool = pool_bytes(family.estimate(family.params_model.model_validate(header.params)))
    before = gpu_free(target["uuid"])
    # The caller's own CUDA_VISIBLE_DEVICES would renumber the GPUs: the agent's is replaced by GPU 0's UUID.
    up = up_daemon(world, "gpu.json", "--device", "cuda:0", env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    try:
        assert up.device == "cuda:0"
        taken = before - gpu_free(target["uuid"])  # Taichi allocates its pool whole as it starts, on that GPU
        assert taken >= pool, (taken, pool)
        # The agent's own view (its /proc environ is overwritten by its title): GPU 0 alone, by UUID, and the sized pool.
        log = log_file(world, up.uuid).read_text()
        assert f"Taichi CUDA pool of {pool} bytes on cuda:0 (CUDA_VISIBLE_DEVICES={target['uuid']}," in log, log[-2000:]
    finally:
        world("down", up.uuid[:8], check=True)
        wait_gone(up.pid)


def test_devices_probe_runs_a_kernel_on_each_device_in_a_throwaway_process(world):
    rows = json.loads(world("devices", "--probe", "--json", check=True).out)
    assert rows[0]["id"] == "cpu" and rows[0]["usable"] is True and rows[0]["backends"] == ["cpu"], rows[0]
    for row in rows[1:]:  # a GPU Taichi cannot start on says why, in Taichi's words
        assert row["usable"] or row["note"], row


def test_the_plan_names_the_agents_already_up_on_the_device(world):
    first = build(world, "first.json")
    up = up_daemon(world, "first.json", "--device", "cpu", "--paused")
    try:
        build(world, "second.json")
        plan = world("up", "second.json", "--simulate", "--device", "cpu", check=True).out
        assert f"(with 1 other agent(s) up there: {first.callsign})" in plan, plan
        assert "promised to agents still starting" not in plan  # on the CPU no pool waits to be taken
    finally:
        world("down", up.uuid[:8], check=True)
        wait_gone(up.pid)
        world("destroy", up.uuid[:8], "--yes", check=True)
