"""What `relay serve` would fail on that the schema cannot see: the files it reads (TLS, DKIM,
policy, word lists), the directories it writes (state dir, spool, outbox maildir), and every
key's value together in one run. Used by `relay config check` and by `relay serve` before
anything starts: both print the same lines and exit 78. Nothing here creates or changes a file.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from relay import config


def check(path: Path) -> tuple[config.Settings | None, list[str], list[str]]:
    """(settings or None, errors, warnings) of the file at `path`; errors name the key."""
    try:
        data = config.read_file(path)
    except config.ConfigError as exc:
        return None, str(exc).splitlines(), []
    source = str(path)
    settings, errors = config.validate(data, source)
    sections = _sections(data)
    problems, warnings = _environment(sections)
    errors += [f"{source}: {p}" for p in problems]
    return (None if errors else settings), errors, warnings


def _sections(data: dict[str, Any]) -> dict[str, Any]:
    """Each section that is valid on its own: its files can be checked while another is wrong."""
    out: dict[str, Any] = {}
    for name, field in config.Settings.model_fields.items():
        model = field.annotation
        raw = data.get(name, {})
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or not isinstance(raw, dict):
            continue
        try:
            out[name] = model.model_validate(raw)
        except ValidationError:
            continue
    return out


def _writable_dir(path: Path) -> str | None:
    """None when `path` is a directory this process can write, or could create; else why not."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create {path}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            return f"cannot write {path}: permission denied"
        return f"cannot create {path}: {existing} is not writable"
    return None


def _readable(path: Path) -> str | None:
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():
        return f"{path}: not a file"
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return f"{path}: cannot read: {(exc.strerror or str(exc)).lower()}"
    return None


def _private_key(path: Path) -> str | None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    problem = _readable(path)
    if problem:
        return problem
    try:
        load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        return f"{path}: not a PEM private key without a password ({exc})"
    return None


def _environment(sec: dict[str, Any]) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    relay = sec.get("relay")
    state_dir: Path | None = relay.state_dir if relay else None
    if state_dir is not None:
        problem = _writable_dir(state_dir)
        if problem:
            errors.append(f"relay.state_dir: {problem}")
            state_dir = None  # said once: the paths under it are not checked again
        else:
            for sub in ("spool", "dkim"):
                if (state_dir / sub).exists() and (problem := _writable_dir(state_dir / sub)):
                    errors.append(f"relay.state_dir: {problem}")
    store = sec.get("store")
    if store is not None and store.password_file is not None and (problem := _readable(store.password_file)):
        errors.append(f"store.password_file: {problem}")
    delivery = sec.get("delivery")
    if delivery is not None and delivery.transport == "maildir":
        maildir = delivery.maildir or (state_dir / "outbox" if state_dir else None)
        key = "delivery.maildir" if delivery.maildir else "relay.state_dir"
        if maildir is not None and (problem := _writable_dir(maildir)):
            errors.append(f"{key}: {problem}")
    if delivery is not None and delivery.tls_ca_file is not None:
        if problem := _readable(delivery.tls_ca_file):
            errors.append(f"delivery.tls_ca_file: {problem}")
        else:
            try:
                ssl.create_default_context(cafile=str(delivery.tls_ca_file))
            except (ssl.SSLError, OSError) as exc:
                errors.append(f"delivery.tls_ca_file: {delivery.tls_ca_file}: not a CA bundle ({exc})")
    tls = sec.get("tls")
    if tls is not None and tls.cert_file is not None and tls.key_file is not None:
        problems = [(k, _readable(p)) for k, p in (("tls.cert_file", tls.cert_file), ("tls.key_file", tls.key_file))]
        errors += [f"{k}: {p}" for k, p in problems if p]
        if not any(p for _, p in problems):
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(tls.cert_file), str(tls.key_file))
            except (ssl.SSLError, OSError) as exc:
                errors.append(f"tls.cert_file, tls.key_file: cannot load the certificate and key ({exc})")
    dkim = sec.get("dkim")
    rules_sec = sec.get("rules")
    sources = []
    if dkim is not None and dkim.source == "store":
        sources.append("dkim.source")
    if rules_sec is not None and rules_sec.unsubscribe_secret_source == "store":
        sources.append("rules.unsubscribe_secret_source")
    kek_file = store.key_file if store is not None and store.key_file else (state_dir / "store.key" if state_dir else None)
    if sources and kek_file is not None:
        from relay import keys

        try:
            keys.load_kek(kek_file)  # the keys themselves are checked by `relay serve` once the store is open
        except config.ConfigError as exc:
            errors.append(f"{exc} (needed by {', '.join(sources)} = \"store\")")
    key_path = None
    if dkim is not None and dkim.source == "file":
        key_path = dkim.private_key or (state_dir / "dkim" / f"{dkim.selector}.pem" if state_dir else None)
    if dkim is not None and key_path is not None:
        key_name = "dkim.private_key" if dkim.private_key else "dkim.selector"
        if key_path.exists():
            if problem := _private_key(key_path):
                errors.append(f"{key_name}: {problem}")
        elif problem := _writable_dir(key_path.parent):
            errors.append(f"{key_name}: {key_path} does not exist and cannot be created: {problem}")
        else:
            warnings.append(f"dkim: key {key_path} does not exist yet (`relay dkim keygen`, or created at start)")
    if dkim is not None and dkim.ed25519_key is not None and (problem := _private_key(dkim.ed25519_key)):
        errors.append(f"dkim.ed25519_key: {problem}")
    policy = sec.get("policy")
    if policy is not None:
        from relay.policy.settings import PolicyConfigError, load_policy

        try:
            load_policy(policy.path)
        except PolicyConfigError as exc:
            errors.append(f"policy.path: {exc}")
        except OSError as exc:
            errors.append(f"policy.path: {policy.path}: cannot read: {(exc.strerror or str(exc)).lower()}")
    rules = sec.get("rules")
    if rules is not None:
        from relay.pipeline.stages.rules import load_words

        try:
            load_words(rules.critical_words)
        except config.ConfigError as exc:
            errors.append(str(exc))
    return errors, warnings
