"""pprof's ``perftools.profiles.Profile`` for the real ``protobuf`` package, built at test time.

No protoc and no generated code: the message layout below (transcribed from
profile.proto's field numbers and types) is turned into a FileDescriptorProto and the
``protobuf`` package makes the classes. ``test_convert_pprof`` checks this table against
the project's copy of profile.proto (shared/data/profile.proto) whenever that is present,
so a slip here cannot hide a slip in the writer.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "perftools.profiles"

#: message -> [(field name, number, type, repeated)]; type is a scalar name or a message.
MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "Profile": [
        ("sample_type", 1, "ValueType", True),
        ("sample", 2, "Sample", True),
        ("mapping", 3, "Mapping", True),
        ("location", 4, "Location", True),
        ("function", 5, "Function", True),
        ("string_table", 6, "string", True),
        ("drop_frames", 7, "int64", False),
        ("keep_frames", 8, "int64", False),
        ("time_nanos", 9, "int64", False),
        ("duration_nanos", 10, "int64", False),
        ("period_type", 11, "ValueType", False),
        ("period", 12, "int64", False),
        ("comment", 13, "int64", True),
        ("default_sample_type", 14, "int64", False),
        ("doc_url", 15, "int64", False),
    ],
    "ValueType": [("type", 1, "int64", False), ("unit", 2, "int64", False)],
    "Sample": [
        ("location_id", 1, "uint64", True),
        ("value", 2, "int64", True),
        ("label", 3, "Label", True),
    ],
    "Label": [
        ("key", 1, "int64", False),
        ("str", 2, "int64", False),
        ("num", 3, "int64", False),
        ("num_unit", 4, "int64", False),
    ],
    "Mapping": [
        ("id", 1, "uint64", False),
        ("memory_start", 2, "uint64", False),
        ("memory_limit", 3, "uint64", False),
        ("file_offset", 4, "uint64", False),
        ("filename", 5, "int64", False),
        ("build_id", 6, "int64", False),
        ("has_functions", 7, "bool", False),
        ("has_filenames", 8, "bool", False),
        ("has_line_numbers", 9, "bool", False),
        ("has_inline_frames", 10, "bool", False),
    ],
    "Location": [
        ("id", 1, "uint64", False),
        ("mapping_id", 2, "uint64", False),
        ("address", 3, "uint64", False),
        ("line", 4, "Line", True),
        ("is_folded", 5, "bool", False),
    ],
    "Line": [
        ("function_id", 1, "uint64", False),
        ("line", 2, "int64", False),
        ("column", 3, "int64", False),
    ],
    "Function": [
        ("id", 1, "uint64", False),
        ("name", 2, "int64", False),
        ("system_name", 3, "int64", False),
        ("filename", 4, "int64", False),
        ("start_line", 5, "int64", False),
    ],
}

_SCALARS = {
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
}


def _classes() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="flamekit_test_profile.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in MESSAGES.items():
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated in fields:
            f = m.field.add(name=fname, number=number)
            f.label = (
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            )
            if ftype in _SCALARS:
                f.type = _SCALARS[ftype]
            else:
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                f.type_name = f".{PACKAGE}.{ftype}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in MESSAGES
    }


CLASSES = _classes()


def parse(data: bytes) -> Any:
    """A Profile message from pprof bytes (gzip-compressed or not)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    msg = CLASSES["Profile"]()
    msg.ParseFromString(data)
    return msg


def fields_in_proto(text: str) -> dict[str, list[tuple[str, int, str, bool]]]:
    """The same table, read from profile.proto's text (for checking the one above)."""
    out: dict[str, list[tuple[str, int, str, bool]]] = {}
    text = re.sub(r"//[^\n]*", "", text)
    for m in re.finditer(r"message\s+(\w+)\s*\{([^}]*)\}", text):
        fields = []
        for f in re.finditer(r"(repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", m.group(2)):
            fields.append((f.group(3), int(f.group(4)), f.group(2), bool(f.group(1))))
        out[m.group(1)] = fields
    return out


def shared_proto() -> Path | None:
    """shared/data/profile.proto, if this checkout has the shared folder beside it."""
    from readers.harness import shared_file

    return shared_file("data/profile.proto")
