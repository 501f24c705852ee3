"""Build the project image with buildah (no Docker engine), run it as a Kubernetes Job would, and
read its layers: the helpers of tests/test_image.py. Needs root, buildah and mmdebstrap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

BUILDAH = ["buildah", "--storage-driver", "vfs"]
STAND_IN_BASE = REPO_ROOT / "deployments/image/stand_in_base.sh"
# The image and the host share the network with chroot isolation (a server on 127.0.0.1 works).
ISOLATION = ["--isolation", "chroot"]
CHUNK_BYTES = 8 << 20


class ImageToolError(RuntimeError):
    """A buildah (or base image) command failed; the message names the command and its output."""


def image_build_unavailable() -> str | None:
    """Why this machine cannot build and run the image, or None when it can."""
    if os.geteuid() != 0:
        return "building the image needs root (buildah's vfs driver and chroot isolation)"
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} missing: apt-get install -y buildah mmdebstrap"
    return None


def run_tool(argv: list[str], *, timeout: float = 1800) -> str:
    """Run a command and return its stdout; raise ImageToolError with its output on failure."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        output = (result.stdout[-3000:] + "\n" + result.stderr[-3000:]).strip()
        raise ImageToolError(f"`{' '.join(argv[:6])} ...` exited {result.returncode}:\n{output}")
    return result.stdout


def buildah(*args: str, timeout: float = 1800) -> str:
    return run_tool([*BUILDAH, *args], timeout=timeout)


def ensure_stand_in_base() -> float:
    """Make the stand-in base image unless local storage has it; return the seconds it took."""
    started = time.monotonic()
    run_tool(["bash", str(STAND_IN_BASE)], timeout=1200)
    return time.monotonic() - started


def copy_build_context(destination: Path) -> Path:
    """The repository's files as a fresh clone plus uncommitted work has them (git's view)."""
    git = ["git", "-C", str(REPO_ROOT)]
    listed = run_tool([*git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    for relative in filter(None, listed.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@dataclass(frozen=True)
class Layer:
    """One layer of an image: its uncompressed digest (diff ID) and the instruction that made it."""

    diff_id: str
    created_by: str


@dataclass(frozen=True)
class BuiltImage:
    """An image in buildah's local storage, how long it took to build, and its layers."""

    tag: str
    build_seconds: float
    layers: list[Layer]

    def layer_made_by(self, instruction: str) -> Layer:
        """The last layer whose instruction contains `instruction` (e.g. `uv sync --frozen`)."""
        matching = [layer for layer in self.layers if instruction in layer.created_by]
        if not matching:
            raise LookupError(f"no layer of {self.tag} was made by {instruction!r}")
        return matching[-1]


def build_image(context: Path, tag: str, *, use_cache: bool) -> BuiltImage:
    """`buildah bud` the context's Dockerfile, unmodified, into `tag`, one layer per instruction."""
    started = time.monotonic()
    buildah(
        "bud", *ISOLATION, "--layers", f"--no-cache={str(not use_cache).lower()}",
        "--pull-never", "--quiet", "-f", str(context / "Dockerfile"), "-t", tag, str(context),
        timeout=3600,
    )  # fmt: skip
    seconds = time.monotonic() - started
    return BuiltImage(tag, seconds, image_layers(tag))


def image_layers(tag: str) -> list[Layer]:
    """The image's layers, bottom first, each with the history entry that made it."""
    config = json.loads(buildah("inspect", "--type", "image", tag))["OCIv1"]
    diff_ids: list[str] = config["rootfs"]["diff_ids"]
    made_by = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
    if len(made_by) != len(diff_ids):
        made_by = [""] * (len(diff_ids) - len(made_by)) + made_by[-len(diff_ids) :]
    return [Layer(d, c) for d, c in zip(diff_ids, made_by, strict=True)]


def image_size(tag: str) -> str:
    """The image's size as buildah reports it (uncompressed, all layers)."""
    return buildah("images", "--format", "{{.Size}}", tag).strip()


def export_layers(tag: str, destination: Path) -> list[Path]:
    """Write the image as an uncompressed OCI layout; return its layer tarballs, bottom first."""
    buildah("push", "--quiet", "--disable-compression", tag, f"oci:{destination}")
    index = json.loads((destination / "index.json").read_text())
    manifest = json.loads(blob(destination, index["manifests"][0]["digest"]).read_text())
    return [blob(destination, layer["digest"]) for layer in manifest["layers"]]


def blob(layout: Path, digest: str) -> Path:
    algorithm, value = digest.split(":", 1)
    return layout / "blobs" / algorithm / value


def layer_findings(tarball: Path, needle: bytes, workdir: str) -> list[str]:
    """What a layer must not hold: files with `needle` in name or content, private keys, .env
    files, a Prefect home (.prefect/) and files under the project's local data/ folder."""
    data = f"{workdir.strip('/')}/data/"
    found = []
    with tarfile.open(tarball) as layer:
        for member in layer:
            name = member.name.removeprefix("./")
            base = name.rsplit("/", 1)[-1]
            if needle in name.encode() or needle in member.linkname.encode():
                found.append(f"{name}: the sentinel in its name")
            elif member.isfile() and content_holds(layer, member, needle):
                found.append(f"{name}: the sentinel in its content")
            if base == ".env" or base.startswith(".env."):
                found.append(f"{name}: a .env file")
            if ".prefect" in name.split("/"):
                found.append(f"{name}: a Prefect home")
            if name.startswith(data) and not member.isdir():
                found.append(f"{name}: local data")
            key_file = base.endswith((".p8", ".pem", ".key")) and member.isfile()
            if key_file and content_holds(layer, member, b"PRIVATE KEY-----"):
                found.append(f"{name}: a private key")
    return found


def content_holds(layer: tarfile.TarFile, member: tarfile.TarInfo, needle: bytes) -> bool:
    """Whether the member's content holds `needle`, read in chunks."""
    stream = layer.extractfile(member)
    if stream is None:
        return False
    tail = b""
    while chunk := stream.read(CHUNK_BYTES):
        # Keep the previous chunk's tail so a needle across the boundary is still found.
        if needle in tail + chunk:
            return True
        tail = chunk[-len(needle) :]
    return False


@contextmanager
def working_container(tag: str) -> Iterator[tuple[str, Path]]:
    """A container of `tag` and its mounted root filesystem; both removed afterwards."""
    container = buildah("from", "--pull-never", "--quiet", tag).strip()
    try:
        yield container, Path(buildah("mount", container).strip())
    finally:
        buildah("rm", container)


@dataclass
class JobContainer:
    """What the rendered Job manifest says about running its one container."""

    args: list[str]
    user: str
    working_dir: str | None
    env: list[tuple[str, str | None]]  # None: the value comes from a Secret
    writable: dict[str, str]  # emptyDir volume name → mount path
    read_only_root: bool
    secret_refs: dict[str, tuple[str, str]] = field(default_factory=dict)


def job_container(manifest: Mapping[str, Any]) -> JobContainer:
    """Read the container's command, user, env, emptyDir mounts and root filesystem setting."""
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    env: list[tuple[str, str | None]] = []
    secret_refs = {}
    for entry in container.get("env", []):
        env.append((entry["name"], entry.get("value")))
        if ref := entry.get("valueFrom", {}).get("secretKeyRef"):
            secret_refs[entry["name"]] = (ref["name"], ref["key"])
    return JobContainer(
        args=list(container["args"]),
        user=f"{context['runAsUser']}:{context['runAsGroup']}",
        working_dir=container.get("workingDir"),
        env=env,
        writable={
            m["name"]: m["mountPath"]
            for m in container.get("volumeMounts", [])
            if m["name"] in empty_dirs
        },
        read_only_root=bool(context.get("readOnlyRootFilesystem")),
        secret_refs=secret_refs,
    )


def home_of(rootfs: Path, uid: int) -> str:
    """The user's home in the image's /etc/passwd: the HOME a container runtime sets."""
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 5 and fields[2] == str(uid):
            return fields[5]
    raise LookupError(f"uid {uid} is not in the image's /etc/passwd: the Dockerfile must add it")


def run_as_job(
    container: str,
    job: JobContainer,
    *,
    volumes: Mapping[str, Path],
    secrets: Mapping[tuple[str, str], str],
    home: str,
    args: list[str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run the Job's command (or `args`) in the container as its user, env and volumes set it.

    `secrets` stands for the Kubernetes Secrets the env refers to. buildah 1.28 cannot copy a
    value from its own environment, so their (test) values go on its command line, never logged.
    """
    options = [*ISOLATION, "--user", job.user, "--env", f"HOME={home}"]
    if job.working_dir:
        options += ["--workingdir", job.working_dir]
    for name, value in job.env:
        if value is None and job.secret_refs.get(name) in secrets:
            value = secrets[job.secret_refs[name]]
        if value is not None:
            options += ["--env", f"{name}={value}"]
    for name, path in job.writable.items():
        options += ["--volume", f"{volumes[name]}:{path}:rw"]
    return subprocess.run(
        [*BUILDAH, "run", *options, container, "--", *(args or job.args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def empty_dir_volumes(root: Path, names: Iterable[str], uid: int, gid: int) -> dict[str, Path]:
    """A host folder per emptyDir volume, owned by the pod's user as fsGroup makes it."""
    volumes = {}
    for name in names:
        path = root / name
        path.mkdir(parents=True)
        os.chown(path, uid, gid)
        volumes[name] = path
    return volumes


FileState = tuple[int, int, int, int, int, str]


def filesystem_state(root: Path) -> dict[str, FileState]:
    """Every path under `root` with its mode, owner, size, mtime and link target."""
    state: dict[str, FileState] = {}
    for directory, subdirs, files in os.walk(root):
        for name in [*subdirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else ""
            state[os.path.relpath(path, root)] = (
                info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, link
            )  # fmt: skip
    return state


def changed_paths(before: Mapping[str, FileState], after: Mapping[str, FileState]) -> list[str]:
    """Paths added, removed or modified between two states, sorted."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
