"""Where one README runs: a scratch mirror of the checkout, a HOME of its own, and the
environment of the session (scripts/test-readmes, top, says what and why)."""

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Build outputs that a README's scripts write into the checkout and its later lines read from it.
SHARED_OUTPUTS = ["integrations/node/pkg"]
# Inherited variables dropped, so that a developer's settings never leak into the examples.
DROPPED_PREFIXES = ("MASKFLOW_", "PG", "AWS_")
DROPPED = {"DATABASE_URL", "VIRTUAL_ENV"}


def git(*args):
    """stdout of a git command in the checkout."""
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


def mirror_checkout(work):
    """Real directories, every tracked file a symlink to the checkout's; the build outputs linked."""
    for path in git("ls-files", "-z").split("\0"):
        if not path:
            continue
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(REPO / path, work / path)
    os.symlink(target_dir(), work / "target")
    for path in SHARED_OUTPUTS:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(REPO / path, work / path)  # may not exist yet: a script of the README builds it


def target_dir():
    """The checkout's cargo target directory (CARGO_TARGET_DIR is followed, as scripts/test does)."""
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target").resolve()


def session_env(name, home):
    """The environment a README's session starts with (test-readmes, top: what the session sees)."""
    real_home = Path.home()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(DROPPED_PREFIXES) and k not in DROPPED}
    env.setdefault("CARGO_HOME", str(real_home / ".cargo"))
    env.setdefault("RUSTUP_HOME", str(real_home / ".rustup"))
    env.setdefault("XDG_CACHE_HOME", str(real_home / ".cache"))
    if (real_home / ".pyenv").is_dir():
        env.setdefault("PYENV_ROOT", str(real_home / ".pyenv"))
    env["HOME"] = str(home)
    path = [str(target_dir() / "release")]
    if name.startswith("integrations/"):
        path += integrations_venv_path()
        env["VIRTUAL_ENV"] = str(integrations_venv())
    shared = REPO.parent / "shared" / "bin"
    if shared.is_dir():
        path.append(str(shared))
    env["PATH"] = os.pathsep.join(path + [env.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    return env


_venv = None


def integrations_venv():
    """A venv of this run's own that sees the integrations venv's packages (chDB, pyspark,
    wasmtime; integrations/test --venv makes that one where missing) through a .pth file: what an
    example installs with `pip` lands here, and the cached venv stays as integrations/test left it."""
    global _venv
    if _venv is None:
        cached = Path(subprocess.run([str(REPO / "integrations/test"), "--venv"], check=True,
                                     stdout=subprocess.PIPE, text=True).stdout.strip())
        venv = Path(tempfile.mkdtemp(prefix="maskflow-readme-venv-"))
        atexit.register(shutil.rmtree, venv, ignore_errors=True)
        subprocess.run([str(cached / "bin/python"), "-m", "venv", str(venv)], check=True)
        site = next(venv.glob("lib/python*/site-packages"))
        (site / "maskflow-integrations-venv.pth").write_text(
            f"{next(cached.glob('lib/python*/site-packages'))}\n", encoding="utf-8")
        # Console scripts the examples call (spark-submit, pyspark) are the cached venv's.
        _venv = (venv, cached)
    return _venv[0]


def integrations_venv_path():
    """PATH entries of the integrations venv: this run's own bin, then the cached venv's."""
    integrations_venv()
    return [str(_venv[0] / "bin"), str(_venv[1] / "bin")]
