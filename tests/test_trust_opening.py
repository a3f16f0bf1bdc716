"""hera never opens anything but a regular file it meant to open, and no settings input hangs it.

Opening a file is already an action: opening a device runs its driver (an
open of ``/dev/watchdog`` arms the watchdog; ``O_NONBLOCK`` prevents hangs,
not that), opening a FIFO releases a writer blocked on it. So another user's
planted ``pyproject.toml``, a link in their cache, or a ``hera.json`` that is
a link must be refused *before* any open, and a file swapped between the
check and the open must be refused too (:mod:`hera.safe_open`).

Whether something was opened is seen without strace: a *witness* process
blocks in ``open(fifo, O_WRONLY)``, which returns only once someone opens
the FIFO for reading, even with ``O_NONBLOCK`` and even for an instant.

Also here: settings JSON whose depth check was quadratic (a minute for 120
KB in ``HERA_PARAMS``, an hour for a 1 MiB ``hera.json``), and ``~/.herarc``
of another user (``sudo -E``) vouching for a planted family folder. Tests
that need another user are skipped unless run as root.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachekit import EVIL_MODULE, PYPROJECT, as_user, make_instance, throwaway_user as make_throwaway_user
from herakit import Result, World, one_error_line

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

OTHER = "nobody"


_WRITER = "import os, sys; os.open(sys.argv[1], os.O_WRONLY); print('opened', flush=True)"


class Witness:
    """A writer blocked on the FIFO at ``path``: it gets through only if someone opened the FIFO to read."""

    def __init__(self, path: Path) -> None:
        assert stat.S_ISFIFO(os.lstat(path).st_mode), path
        self.path = path
        self.process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)  # let it reach its open()
        assert self.process.poll() is None, "the witness got through before anything ran"

    def opened(self, wait: float = 0.5) -> bool:
        """Whether the FIFO was opened for reading since the witness started."""
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def witnesses() -> Iterator[list[Witness]]:
    made: list[Witness] = []
    yield made
    for witness in made:
        witness.close()


def watch(witnesses: list[Witness], path: Path) -> Witness:
    witness = Witness(path)
    witnesses.append(witness)
    return witness


def clean(result: Result) -> None:
    assert result.rc == 0 and "Traceback" not in result.err, str(result)


@pytest.fixture(scope="module")
def throwaway_user() -> Iterator[pwd.struct_passwd]:
    """A real user with a home of their own, removed afterwards."""
    yield from make_throwaway_user()


# -- F4: a family folder's pyproject.toml ------------------------------------------------------


@needs_root
@pytest.mark.parametrize("planted", ["fifo", "link-to-fifo", "link-to-dev-kmsg"])
def test_root_never_opens_a_special_file_planted_as_a_family_folders_pyproject(
    hera: World, shared: Path, witnesses: list[Witness], planted: str
) -> None:
    as_user(OTHER, shared, "mkdir evil && mkfifo fifo")
    if planted == "fifo":
        as_user(OTHER, shared, "mkfifo evil/pyproject.toml")
        witness = watch(witnesses, shared / "evil" / "pyproject.toml")
    elif planted == "link-to-fifo":
        as_user(OTHER, shared, "ln -s ../fifo evil/pyproject.toml")
        witness = watch(witnesses, shared / "fifo")
    else:
        as_user(OTHER, shared, "ln -s /dev/kmsg evil/pyproject.toml")
        witness = watch(witnesses, shared / "fifo")  # opened by nothing: a control

    result = hera("families", "--json", cwd=shared, timeout=30)

    clean(result)
    assert "evil" not in {row["name"] for row in json.loads(result.out)}
    assert not witness.opened(), f"hera opened {witness.path}, which another user planted"


def test_a_pyproject_that_is_a_link_is_not_followed_even_to_a_good_file(hera: World) -> None:
    """Read before any trust check, so not through a link: a link's target is checked only later, if at all."""
    folder = hera.workdir / "linked"
    folder.mkdir()
    (hera.workdir / "real-pyproject.toml").write_text(PYPROJECT.format(name="evil"))
    (folder / "pyproject.toml").symlink_to("../real-pyproject.toml")
    result = hera("families", "--json", timeout=30)
    clean(result)
    assert "evil" not in {row["name"] for row in json.loads(result.out)}


# -- F4: files in a cache hera lists -----------------------------------------------------------


def test_a_fifo_in_ones_own_cache_or_a_link_to_one_is_listed_broken_and_never_opened(
    hera: World, witnesses: list[Witness]
) -> None:
    cache = Path(hera.env["XDG_DATA_HOME"]) / "hera" / "agents"
    cache.mkdir(parents=True, mode=0o700)
    os.mkfifo(cache / "fifo.json")
    os.mkfifo(hera.home / "elsewhere")
    (cache / "link.json").symlink_to(hera.home / "elsewhere")
    direct, linked = watch(witnesses, cache / "fifo.json"), watch(witnesses, hera.home / "elsewhere")

    result = hera("agents", "--json", timeout=30)

    clean(result)
    rows = {Path(row["path"]).name: row for row in json.loads(result.out)}
    for name in ("fifo.json", "link.json"):
        assert rows[name]["state"] == "broken" and "not a regular file" in rows[name]["error"], rows[name]
    assert not direct.opened() and not linked.opened()


@needs_root
@pytest.mark.parametrize("which", ["--user", "--all"])
def test_root_listing_another_users_cache_opens_nothing_they_link_to(
    hera: World, tmp_path: Path, throwaway_user: pwd.struct_passwd, witnesses: list[Witness], which: str
) -> None:
    user, home = throwaway_user.pw_name, Path(throwaway_user.pw_dir)
    # root's own agent, which the user may not read: a link to it must not make root read it for them.
    mine = make_instance(tmp_path, "roots-own.json", callsign="roots-secret")
    cache = home / ".local" / "share" / "hera" / "agents"
    as_user(user, home, f"rm -rf {cache} && mkdir -p -m 700 {cache} && rm -f fifo && mkfifo fifo")
    as_user(user, cache, f"ln -s {home}/fifo evil.json && ln -s /dev/kmsg kmsg.json && ln -s {mine} borrowed.json")
    witness = watch(witnesses, home / "fifo")

    result = hera("agents", *(["--user", user] if which == "--user" else ["--all"]), "--json", timeout=60)

    clean(result)
    assert "roots-secret" not in result.out, "root read its own agent through a link another user made"
    rows = {Path(row["path"]).name: row for row in json.loads(result.out) if Path(row["path"]).parent == cache}
    assert set(rows) == {"evil.json", "kmsg.json", "borrowed.json"}, result.out
    for row in rows.values():
        assert row["state"] == "broken", row
    assert not witness.opened(), "root opened a FIFO another user linked into their cache"


def test_an_instance_file_named_through_ones_own_link_is_read(hera: World) -> None:
    """A FILE named on the command line may be a link the caller made: it is followed."""
    make_instance(hera.workdir, "real.json", callsign="linked-brain")
    (hera.workdir / "link.json").symlink_to("real.json")
    result = hera("inspect", "link.json", timeout=60)
    assert result.rc == 0 and "linked-brain" in result.out, str(result)


# -- F4: settings files ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["fifo", "link-to-fifo"])
@pytest.mark.parametrize("which", ["hera.json", ".herarc"])
def test_a_settings_file_that_is_or_leads_to_a_fifo_is_one_line_and_never_opened(
    hera: World, witnesses: list[Witness], which: str, how: str
) -> None:
    path = hera.hera_json if which == "hera.json" else hera.herarc
    if how == "fifo":
        os.mkfifo(path)
        witness = watch(witnesses, path)
    else:
        os.mkfifo(hera.root / "fifo")
        path.symlink_to(hera.root / "fifo")
        witness = watch(witnesses, hera.root / "fifo")

    one_error_line(hera("info", timeout=30), str(path), "not a regular file")
    assert not witness.opened(), f"hera opened the FIFO behind {path}"


def test_a_settings_file_swapped_for_a_link_after_it_was_checked_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config used to lstat, then open by path: a link swapped in between was followed."""
    from hera import config
    from hera.errors import HeraError

    settings = tmp_path / "hera.json"
    settings.write_text('{"layout": "mine"}')
    decoy = tmp_path / "decoy.json"
    decoy.write_text('{"layout": "theirs"}')
    real_lstat = os.lstat

    def lstat_then_swap(path: object, *args: object, **kwargs: object) -> os.stat_result:
        info = real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]
        if str(path) == str(settings) and not stat.S_ISLNK(info.st_mode):
            settings.unlink()
            settings.symlink_to(decoy)
        return info

    monkeypatch.setattr(os, "lstat", lstat_then_swap)
    with pytest.raises(HeraError) as refused:
        config.read_file(settings, owned=True)
    assert str(settings) in refused.value.message and "changed" in refused.value.message


# -- F4: the helper itself ---------------------------------------------------------------------


@pytest.fixture(params=["o_path", "stat-then-open"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways :mod:`hera.safe_open` works: O_PATH (Linux), and stat-then-open (elsewhere)."""
    from hera import safe_open

    if request.param == "o_path" and safe_open.O_PATH is None:
        pytest.skip("no O_PATH here")
    if request.param == "stat-then-open":
        monkeypatch.setattr(safe_open, "O_PATH", None)
    return str(request.param)


def test_the_helper_refuses_links_when_told_and_follows_them_when_allowed(tmp_path: Path, mode: str) -> None:
    from hera.safe_open import NotRegular, open_regular

    target = tmp_path / "target"
    target.write_text("data")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(NotRegular, match="symbolic link"):
        open_regular(link, follow=False)
    fd, info = open_regular(link, follow=True)
    try:
        assert os.read(fd, 10) == b"data" and info.st_ino == os.stat(target).st_ino
    finally:
        os.close(fd)
    with pytest.raises(NotRegular, match="directory"):
        open_regular(tmp_path, follow=True)


def test_the_helper_refuses_a_file_swapped_between_check_and_open(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hera.safe_open import Replaced, open_regular

    path = tmp_path / "file"
    path.write_text("checked")
    other = tmp_path / "other"
    other.write_text("swapped in")
    real_lstat = os.lstat
    swapped: list[bool] = []

    def lstat_then_swap(target: object, *args: object, **kwargs: object) -> os.stat_result:
        info = real_lstat(target, *args, **kwargs)  # type: ignore[arg-type]
        if str(target) == str(path) and not swapped:
            swapped.append(True)
            os.replace(other, path)
        return info

    monkeypatch.setattr(os, "lstat", lstat_then_swap)
    with pytest.raises(Replaced):
        open_regular(path, follow=False)


@needs_root
def test_the_helper_never_opens_a_fifo_in_o_path_mode(tmp_path: Path, witnesses: list[Witness]) -> None:
    """With O_PATH not even a swap to a FIFO gets it opened: the checked object is the one reopened."""
    from hera import safe_open

    if safe_open.O_PATH is None:
        pytest.skip("no O_PATH here")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    witness = watch(witnesses, fifo)
    for follow in (False, True):
        with pytest.raises(safe_open.NotRegular, match="FIFO"):
            safe_open.open_regular(fifo, follow=follow)
    assert not witness.opened()


# -- F6: settings input that took minutes ------------------------------------------------------

_TIMED = (
    "import sys, time\n"
    "from hera.config import nesting_depth\n"
    "text = sys.stdin.read()\n"
    "start = time.perf_counter()\n"
    "nesting_depth(text)\n"
    "print(time.perf_counter() - start)\n"
)

ESCAPED_QUOTES = '"' + '\\"' * 60_000  # 120 KB: 56 s before


@pytest.mark.parametrize(
    "text",
    [
        ESCAPED_QUOTES,
        '{"params": "' + '\\"' * ((1 << 20) // 2 - 8),  # 1 MiB: about an hour before
        '"' * (1 << 20),
        '["\\' * ((1 << 20) // 3),
    ],
    ids=["120k-escaped-quotes", "1mib-escaped-quotes", "1mib-quotes", "1mib-mixed"],
)
def test_measuring_the_depth_of_adversarial_json_is_linear(text: str) -> None:
    done = subprocess.run([sys.executable, "-c", _TIMED], input=text, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 0.5, f"took {float(done.stdout):.2f} s"


def test_hera_params_full_of_escaped_quotes_is_one_line_at_once(hera: World) -> None:
    start = time.monotonic()
    one_error_line(hera("agents", env={"HERA_PARAMS": ESCAPED_QUOTES}, timeout=30), "HERA_PARAMS")
    assert time.monotonic() - start < 15


def test_a_1mib_adversarial_hera_json_is_one_line_at_once(hera: World) -> None:
    hera.hera_json.write_text('{"params": "' + '\\"' * ((1 << 20) // 2 - 8))
    assert hera.hera_json.stat().st_size <= 1 << 20
    start = time.monotonic()
    one_error_line(hera("agents", timeout=30), str(hera.hera_json), "malformed JSON")
    assert time.monotonic() - start < 15


def test_depth_is_still_counted_right() -> None:
    from hera.config import nesting_depth

    assert nesting_depth('{"a": [1, {"b": "]]}}[[[\\"{{"}]}') == 3
    assert nesting_depth('["\\\\", ["x"]]') == 2
    assert nesting_depth("[" * 40) == 40


# -- nit: ~/.herarc must be the caller's -------------------------------------------------------


@needs_root
def test_root_with_another_users_home_imports_nothing_their_herarc_trusts(
    hera: World, shared: Path, tmp_path: Path, throwaway_user: pwd.struct_passwd
) -> None:
    """``sudo -E hera``: HOME is still the user's; their ``trusted_family_dirs`` must not vouch to root."""
    user, home = throwaway_user.pw_name, Path(throwaway_user.pw_dir)
    marker = tmp_path / "planted-code-ran"
    as_user(user, shared, "mkdir -p theirs/evil_family")
    as_user(user, shared, "cat > theirs/pyproject.toml", PYPROJECT.format(name="evil"))
    as_user(user, shared, "cat > theirs/evil_family/__init__.py", EVIL_MODULE.format(marker=str(marker)))
    as_user(user, home, "cat > .herarc", json.dumps({"trusted_family_dirs": [str(shared / "theirs")]}))

    for command in (["families", "--json"], ["--family", "evil", "build"]):
        one_error_line(hera(*command, env={"HOME": str(home)}, cwd=shared, timeout=60), str(home / ".herarc"), user)
    assert not marker.exists(), "root imported a folder another user's ~/.herarc vouched for"
