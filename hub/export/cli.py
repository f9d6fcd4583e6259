"""``anninh export``: write an evidence package, verify one, or print the hub's public key.

    anninh export -c FILE --device ID [--channel N] --start "YYYY-MM-DD HH:MM[:SS]" --end "…"
                  [--case T] [--reason T] [--by USER] -o DIR
    anninh export verify PACKAGE_DIR [--key PEM] [-c FILE [--by USER]]   (-c: recorded in the audit table)
    anninh export key -c FILE

Exit codes: 0 complete (verify: intact), 2 complete with gaps (listed), 1 failed (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

from hub.api import CliContext, CommandSpec
from hub.cli.common import load_or_exit
from hub.export.times import parse_time
from hub.i18n import N_, _, tr


def _arguments(p: argparse.ArgumentParser) -> None:
    p.description = _("Export footage from a recorder as a signed evidence package; `export verify DIR` checks "
                      "a package, `export key -c FILE` prints the hub's public key.")
    p.add_argument("action", nargs="?", choices=["verify", "key"],
                   help=_("verify a package, or print the key"))
    p.add_argument("package", nargs="?", type=Path, help=_("the package directory (verify)"))
    p.add_argument("-c", "--config", type=Path, metavar="FILE",
                   help=_("the hub's YAML config (verify: also record the check in the hub's audit "
                          "table)"))
    p.add_argument("--device", help=_("recorder id (or a camera that records on one)"))
    p.add_argument("--channel", type=int, default=None,
                   help=_("recorder channel (default 1, or the camera's)"))
    p.add_argument("--start", type=parse_time, help=_('"YYYY-MM-DD HH:MM[:SS]", the hub\'s local time'))
    p.add_argument("--end", type=parse_time, help='"YYYY-MM-DD HH:MM[:SS]"')
    p.add_argument("--case", default=None, help=_("case number"))
    p.add_argument("--reason", default=None, help=_("why the footage is taken"))
    p.add_argument("--by", default=None,
                   help=_("who asked for it (verify with -c: who checked it)"))
    p.add_argument("-o", "--out", type=Path, help=_("directory the package is written in"))
    p.add_argument("--key", type=Path, metavar="PEM",
                   help=_("verify against this public key (pinned)"))


def _fail(message: str) -> int:
    print(tr("error: {issue}", issue=message), file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    if args.action == "verify":
        return cmd_verify(args)
    if args.action == "key":
        return cmd_key(args)
    missing = [f"--{n}" for n, v in (("config", args.config), ("device", args.device), ("start", args.start),
                                     ("end", args.end), ("out", args.out)) if v is None]
    if missing:
        return _fail(tr("missing {options} (see anninh export --help)", options=", ".join(missing)))
    config, plugins = load_or_exit(args.config)
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from hub.export.run import ExportError, ExportRequest, export

    request = ExportRequest(device=args.device, channel=args.channel, start=args.start, end=args.end,
                            out_dir=args.out, case=args.case, reason=args.reason, requested_by=args.by)
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("export", total=1.0)

        def progress(message: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=message[:40])

        try:
            result = asyncio.run(export(config, plugins, request, progress))
        except ExportError as exc:
            return _fail(str(exc))
    print(result.path)
    if result.gaps:
        for a, b in result.gaps:
            print(tr("gap: no footage from {start} to {end}", start=a.strftime("%Y-%m-%d %H:%M:%S"),
                     end=b.strftime("%Y-%m-%d %H:%M:%S")), file=sys.stderr)
        return 2
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from hub.export.keys import load_public_pem
    from hub.export.package import verify

    if args.package is None:
        return _fail(_("usage: anninh export verify PACKAGE_DIR [--key PEM]"))
    key = None
    if args.key is not None:
        try:
            key = load_public_pem(args.key.read_bytes())
        except (OSError, ValueError) as exc:
            return _fail(tr("{path}: cannot read an Ed25519 public key ({error})", path=args.key, error=exc))
    problems, used = verify(args.package, key)
    if args.config is not None:
        _audit_verification(args, problems)
    if problems:
        for problem in problems:
            print(tr("FAILED: {problem}", problem=problem))
        return 1
    if key is not None:
        print(tr("OK ({used}, the key given)", used=used))
    else:
        print(tr("OK ({used}, the key inside the package)", used=used))
    return 0


def _audit_verification(args: argparse.Namespace, problems: list[str]) -> None:
    """With ``-c``: the verification goes into the hub's audit table (chain of custody)."""
    import hashlib
    import json
    from datetime import UTC

    from hub.storage import History

    config, _plugins = load_or_exit(args.config)
    package = Path(args.package)
    try:
        data = (package / "manifest.json").read_bytes()
        manifest = json.loads(data)
        device = str(manifest.get("device", {}).get("id") or "-")
        what = {"package_id": manifest.get("package_id"), "manifest_sha256": hashlib.sha256(data).hexdigest()}
    except (OSError, ValueError, AttributeError):
        device, what = "-", {"package_id": package.name}
    history = History(config.data_dir / "history.db")
    try:
        history.add_audit(datetime.now(UTC), args.by, device[:64], {"export_verify": what},
                          "failed" if problems else "verified", "; ".join(problems)[:1000] or None)
        history.flush()
    finally:
        history.close()


def cmd_key(args: argparse.Namespace) -> int:
    from hub.export.keys import fingerprint, load_or_create, public_pem

    if args.config is None:
        return _fail(_("usage: anninh export key -c FILE"))
    config, _plugins = load_or_exit(args.config)
    key = load_or_create(config.data_dir).public_key()
    sys.stdout.write(public_pem(key).decode())
    print(fingerprint(key))
    return 0


EXPORT = CommandSpec(
    name="export", help=N_("export footage as a signed evidence package (also: export verify DIR, export key)"),
    run=cmd_export, arguments=_arguments)
