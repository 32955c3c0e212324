"""Independent checks of what resynth emits for lineage and approvals.

events FILE...      Parse every OpenLineage event (JSON lines) strictly with the
                    official client's event model (openlineage-python's
                    generated attrs classes, which encode the spec): every key
                    must be a field of the spec's class, every value of the
                    field's type, every facet is the official class whose
                    `_schemaURL` it names (and of the kind its place needs:
                    run, job, dataset, input or output facet), the client's
                    own validators run (RFC 3339 times, UUID run ids), and the
                    client's serializer must give the event back unchanged.
                    Custom facets (a `urn:resynth:` schema URL) are checked
                    against schemas/openlineage/ResynthRunFacet.json.
serve PORT FILE SECS  An HTTP receiver for the HTTP transport, in the manner of
                    Marquez's POST /api/v1/lineage: each event is checked as
                    above, appended to FILE, answered 201 (400 when invalid);
                    stops after SECS seconds.
dsse ENVELOPE PEM   Verify a DSSE envelope's Ed25519 signature with the
                    `cryptography` package (PAE computed here) and print the
                    in-toto statement.

Exit status 0 when everything checks, 1 otherwise.
"""

from __future__ import annotations

import base64
import enum
import importlib
import inspect
import json
import pathlib
import pkgutil
import sys
import types
import typing

import attr
import jsonschema
import openlineage.client.generated as generated
from openlineage.client import event_v2
from openlineage.client.generated import base
from openlineage.client.serde import Serde

ROOT = pathlib.Path(__file__).resolve().parents[2]
CUSTOM_PREFIX = "urn:resynth:"
CUSTOM_SCHEMA = json.loads((ROOT / "schemas/openlineage/ResynthRunFacet.json").read_text())


def official_facets() -> dict[str, type]:
    """Every facet class the client ships, by the schema URL it declares."""
    out = {}
    for m in pkgutil.iter_modules(generated.__path__):
        mod = importlib.import_module(f"openlineage.client.generated.{m.name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and issubclass(cls, base.BaseFacet):
                out[cls._get_schema()] = cls
    return out


FACETS = official_facets()


class Invalid(Exception):
    pass


def resolved(cls: type) -> tuple:
    # Annotations are strings (PEP 563), written in the modules of the
    # classes that declare them: resolve them in all of those.
    ns = dict(vars(typing))
    for klass in reversed(cls.__mro__):
        ns.update(vars(sys.modules[klass.__module__]))
    attr.resolve_types(cls, globalns=ns)
    return attr.fields(cls)


def facet(value, kind: type, path: str):
    if not isinstance(value, dict):
        raise Invalid(f"{path}: a facet must be an object")
    url = value.get("_schemaURL")
    if not isinstance(url, str):
        raise Invalid(f"{path}: _schemaURL missing")
    if url.startswith(CUSTOM_PREFIX):
        try:
            jsonschema.validate(value, CUSTOM_SCHEMA)
        except jsonschema.ValidationError as e:
            raise Invalid(f"{path}: custom facet does not match ResynthRunFacet.json: {e.message}")
        extra = {k: v for k, v in value.items() if not k.startswith("_")}
        obj = kind(producer=value["_producer"]).with_additional_properties(**extra)
        object.__setattr__(obj, "_schemaURL", url)
        return obj
    cls = FACETS.get(url)
    if cls is None:
        raise Invalid(f"{path}: no official facet has _schemaURL {url}")
    if not issubclass(cls, kind):
        raise Invalid(f"{path}: {cls.__name__} is not a {kind.__name__} (wrong place for it)")
    return build(cls, value, path)


def typed(tp, value, path: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return typed(rest[0], value, path)
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{path}: expected a list")
        return [typed(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{path}: expected an object")
        inner = args[1]
        if inspect.isclass(inner) and issubclass(inner, base.BaseFacet):
            return {k: facet(v, inner, f"{path}.{k}") for k, v in value.items()}
        return {k: typed(inner, v, f"{path}.{k}") for k, v in value.items()}
    if tp is typing.Any:
        return value
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise Invalid(f"{path}: {value!r} is not one of {[e.value for e in tp]}")
    if attr.has(tp):
        return build(tp, value, path)
    want = {str: str, int: int, bool: bool, float: (int, float)}.get(tp)
    if want is None:
        raise Invalid(f"{path}: unsupported type {tp}")
    if not isinstance(value, want) or (tp is int and isinstance(value, bool)):
        raise Invalid(f"{path}: expected {tp.__name__}, got {type(value).__name__}")
    return value


def build(cls: type, data, path: str):
    if not isinstance(data, dict):
        raise Invalid(f"{path}: expected an object for {cls.__name__}")
    fields = {f.name: f for f in resolved(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise Invalid(f"{path}: {cls.__name__} has no field(s) {sorted(unknown)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is attr.NOTHING and f.init:
                raise Invalid(f"{path}: required field {name} of {cls.__name__} missing")
            continue
        if not f.init:
            continue
        kwargs[f.alias] = typed(f.type, data[name], f"{path}.{name}")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise Invalid(f"{path}: the client's {cls.__name__} rejects it: {e}")
    if "_schemaURL" in data and data["_schemaURL"] != obj._schemaURL:
        raise Invalid(f"{path}: _schemaURL {data['_schemaURL']} is not {obj._schemaURL}")
    if "schemaURL" in data and data["schemaURL"] != obj.schemaURL:
        raise Invalid(f"{path}: schemaURL {data['schemaURL']} is not {obj.schemaURL}")
    return obj


def bare(v):
    """Drops nulls, empty objects and empty lists (the serializer's defaults)."""
    if isinstance(v, dict):
        out = {k: bare(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in (None, {}, [])}
    if isinstance(v, list):
        return [bare(x) for x in v if x is not None]
    return v


def check_event(event: dict, path: str) -> None:
    parsed = build(event_v2.RunEvent, event, path)
    again = Serde.to_dict(parsed)
    if bare(again) != bare(event):
        raise Invalid(f"{path}: the client's serializer does not give the event back unchanged")


def events(files: list[str]) -> int:
    n, bad = 0, 0
    for name in files:
        for i, line in enumerate(pathlib.Path(name).read_text().splitlines()):
            if not line.strip():
                continue
            n += 1
            try:
                check_event(json.loads(line), f"{name}:{i + 1}")
            except (Invalid, json.JSONDecodeError) as e:
                bad += 1
                print(f"INVALID {e}")
    print(f"openlineage-python strict parse: {n - bad} of {n} events valid")
    return 0 if n and not bad else 1


def serve(port: int, out: str, seconds: float) -> int:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                if self.path != "/api/v1/lineage":
                    raise Invalid(f"POST to {self.path}, expected /api/v1/lineage")
                if self.headers.get("Content-Type") != "application/json":
                    raise Invalid("Content-Type is not application/json")
                event = json.loads(body)
                check_event(event, "http")
                with open(out, "a") as f:
                    f.write(json.dumps(event) + "\n")
                self.send_response(201)
            except (Invalid, json.JSONDecodeError) as e:
                print(f"INVALID {e}", flush=True)
                self.send_response(400)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Timer(seconds, server.shutdown).start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
    return 0


def dsse(envelope_path: str, pem_path: str) -> int:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    env = json.loads(pathlib.Path(envelope_path).read_text())
    body = base64.b64decode(env["payload"])
    kind = env["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
    key = load_pem_public_key(pathlib.Path(pem_path).read_bytes())
    for s in env["signatures"]:
        try:
            key.verify(base64.b64decode(s["sig"]), pae)
        except InvalidSignature:
            continue
        statement = json.loads(body)
        assert statement["_type"] == "https://in-toto.io/Statement/v1", statement["_type"]
        print(json.dumps(statement, sort_keys=True))
        return 0
    print("INVALID no signature verifies with", pem_path)
    return 1


def main() -> int:
    cmd, *args = sys.argv[1:] or ["help"]
    if cmd == "events":
        return events(args)
    if cmd == "serve":
        return serve(int(args[0]), args[1], float(args[2]))
    if cmd == "dsse":
        return dsse(args[0], args[1])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
