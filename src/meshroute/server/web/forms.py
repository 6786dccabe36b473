"""Form bodies (`application/x-www-form-urlencoded`, what a browser posts), parsed strictly: UTF-8
text without NUL, a bounded number of fields (the request guard bounds the size)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from meshroute.core.errors import BadRequest

MAX_FIELDS = 2000  # a form of every group of a large account stays well below this


class Form:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.pairs:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes), empty ones left out, in order, once each."""
        return list(dict.fromkeys(v for k, v in self.pairs if k == name and v))

    def flag(self, name: str) -> bool:
        """A checkbox: present (with any value but empty) means on."""
        return bool(self.get(name))

    def __contains__(self, name: str) -> bool:
        return any(k == name for k, _ in self.pairs)


def parse_form(raw: bytes) -> Form:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read: send it from the dashboard's page") from None
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise BadRequest("the form could not be read: text must not contain NUL characters")
    return Form([(k, v.replace("\r\n", "\n")) for k, v in pairs])


async def form_body(request: Request) -> Form:
    return parse_form(await request.body())
