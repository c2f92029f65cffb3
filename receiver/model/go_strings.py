"""Go's double-quoted strings: what strconv.Unquote reads, and a quoting it reads back."""

from __future__ import annotations

_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = frozenset("0123456789abcdefABCDEF")


def go_unquote(quoted: str) -> str:
    """A double-quoted string as Go's strconv.Unquote reads it, which must then be UTF-8."""
    body, out, i = quoted[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == "\n":
            raise ValueError("a line break inside quotes must be written \\n")
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        escape = body[i + 1 : i + 2]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            i += 2
        elif escape in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[escape]
            digits = body[i + 2 : i + 2 + size]
            if len(digits) < size or not _HEX.issuperset(digits):
                raise ValueError(f"\\{escape} takes {size} hex digits, got {digits!r}")
            code = int(digits, 16)
            if escape == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError(f"\\{escape}{digits} is not a Unicode code point")
            else:
                out += chr(code).encode()
            i += 2 + size
        elif escape and escape in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) < 3 or not set(digits) <= set("01234567") or int(digits, 8) > 255:
                raise ValueError(f"\\{digits} is not an octal byte (three digits, at most \\377)")
            out.append(int(digits, 8))
            i += 4
        else:
            raise ValueError(f"\\{escape} is not an escape Go's strings take")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the escaped bytes are not valid UTF-8") from None


def go_quote(text: str) -> str:
    """Double-quoted with Go's escapes, so that strconv.Unquote gives the text back."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
