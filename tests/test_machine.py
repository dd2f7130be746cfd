"""One description of the machine, for bench.json and the results reports."""

from sertiny._io import update_section
from sertiny.machine import describe_device, is_emulated, machine_info, machine_lines


def test_bench_and_reports_describe_the_same_cpu(monkeypatch):
    monkeypatch.delenv("SERTINY_EMULATED", raising=False)
    device, info = describe_device(), machine_info()
    assert device["cpu"] == info["cpu_model"] and device["machine"] == info["machine"]
    assert device["emulated"] is False and device["emulator"] is None
    assert int(info["cpus"]) <= device["cores"]
    lines = machine_lines(info)
    assert len(lines) == 4 and info["cpu_model"] in lines[1] and info["load"] in lines[2]


def test_emulation_is_marked_by_the_environment(monkeypatch):
    monkeypatch.setenv("SERTINY_EMULATED", "qemu-aarch64-static")
    assert is_emulated() and describe_device()["emulator"] == "qemu-aarch64-static"
    monkeypatch.setenv("SERTINY_EMULATED", "0")
    assert not is_emulated()


def test_update_section_keeps_the_other_sections(tmp_path):
    path = tmp_path / "results.md"
    update_section(path, "speed", "fast", title="Front end")
    update_section(path, "agreement", "agrees", title="Front end")
    update_section(path, "speed", "faster", title="ignored for an existing file")
    text = path.read_text()
    assert text.startswith("# Front end\n") and text.count("# ") == 1
    assert "<!-- speed:start -->\nfaster\n<!-- speed:end -->" in text and "fast\n" not in text
    assert "<!-- agreement:start -->\nagrees\n<!-- agreement:end -->" in text
