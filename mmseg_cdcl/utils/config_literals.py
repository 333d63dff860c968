"""Config files written as literals: every value the plugin writes into a ``.py`` config loads back
unchanged, whatever its strings hold.

The strings of a written config come from checkpoints (class names), datasets and command lines
(names, paths): untrusted text. ``Config.dump`` writes a dict key as ``'{key}'`` unescaped, so a
key with a quote is a syntax error and one with a newline is code; ``Config.fromfile``
substitutes ``{{ fileDirname }}``, ``{{$VAR:default}}`` and ``{{_base_.x}}`` by regular
expression over the whole file text, inside string literals and comments too. Here a string is
``repr``'s literal with each ``{`` written ``\\x7b`` (so no substitution matches: the value
loads back as written; non-ASCII letters stay readable, the file is UTF-8), and a comment holds
a line of text only if it is printable and brace-free, else that line's literal.

Example:
    >>> from mmseg_cdcl.utils.config_literals import dump_config
    >>> dump_config(dict(label_space=dict(classes=('road', "cam'o\\n"))), 'space.py',
    ...             header=['Learned from iter_240.pth'])
    >>> print(open('space.py').read())
    # Learned from iter_240.pth
    label_space = dict(classes=('road', "cam'o\\n"))
"""

import keyword
import math
import numbers
import unicodedata
from typing import Any, Sequence, Union

from mmengine.config import Config

WIDTH = 100
# Top-level names a written config cannot assign: mmengine reads ``_base_`` as inheritance and
# drops ``__*``; the written values call ``dict`` and ``float``.
_RESERVED = ('_base_', 'dict', 'float')


def is_identifier(key: Any) -> bool:
    """Whether ``key`` can be written as ``dict(key=...)`` and read back as the same string: a
    Python identifier, not a keyword, unchanged by the NFKC normalisation Python applies to
    identifiers (``'ﬁ'`` would be read as ``'fi'``)."""
    return (
        isinstance(key, str)
        and key.isidentifier()
        and not keyword.iskeyword(key)
        and unicodedata.normalize('NFKC', key) == key
    )


def py_literal(value: Any, where: str = 'value') -> str:
    """The Python source of a config value on one line: dicts as ``dict(k=v)`` where every key
    is an identifier (else ``{k: v}``), lists, tuples, strings, numbers, booleans, ``None``.

    Args:
        value: The value; dicts (``ConfigDict`` too), lists and tuples nest.
        where (str): Its name in error messages. Defaults to 'value'.

    Raises:
        TypeError: a value of another type (naming where it is), or a number that a literal
            cannot state exactly.
    """
    if isinstance(value, dict):
        if all(is_identifier(k) for k in value):
            return (
                'dict('
                + ', '.join(f'{k}={py_literal(v, f"{where}.{k}")}' for k, v in value.items())
                + ')'
            )
        return (
            '{'
            + ', '.join(
                f'{_key(k, where)}: {py_literal(v, f"{where}[{k!r}]")}' for k, v in value.items()
            )
            + '}'
        )
    if isinstance(value, (list, tuple)):
        items = [py_literal(v, f'{where}[{i}]') for i, v in enumerate(value)]
        if isinstance(value, list):
            return '[' + ', '.join(items) + ']'
        return '(' + ', '.join(items) + (',)' if len(items) == 1 else ')')
    return _scalar(value, where)


def py_source(value: Any, column: int = 0, indent: int = 0, where: str = 'value') -> str:
    """The Python source of a config value, in :data:`WIDTH` columns where its parts allow: a
    value that does not fit on its line is split one item a line (lists of scalars and of short
    sequences packed several a line), with trailing commas, as black lays out a literal.

    Args:
        value: As :func:`py_literal`.
        column (int): The column the value starts at. Defaults to 0.
        indent (int): The indentation of the line it starts on. Defaults to 0.
        where (str): Its name in error messages. Defaults to 'value'.
    """
    flat = py_literal(value, where)
    if column + len(flat) < WIDTH or not isinstance(value, (dict, list, tuple)) or not value:
        return flat
    pad = ' ' * (indent + 4)
    if isinstance(value, dict):
        named = all(is_identifier(k) for k in value)
        lines = []
        for k, v in value.items():
            key = f'{k}=' if named else f'{_key(k, where)}: '
            inner = f'{where}.{k}' if named else f'{where}[{k!r}]'
            lines.append(pad + key + py_source(v, len(pad) + len(key), len(pad), inner) + ',')
        opening, closing = ('dict(', ')') if named else ('{', '}')
    else:
        opening, closing = ('[', ']') if isinstance(value, list) else ('(', ')')
        items = [
            py_source(v, len(pad), len(pad), f'{where}[{i}]') + ',' for i, v in enumerate(value)
        ]
        lines = _packed(items, pad) if all(map(_is_short, value)) else [pad + i for i in items]
    return opening + '\n' + '\n'.join(lines) + '\n' + ' ' * indent + closing


def comment(text: str) -> str:
    """A comment line holding ``text``: as it is where it is printable (no line break of any
    kind, no control character) and free of ``{`` (mmengine's substitutions), else its
    literal."""
    return '# ' + (text if text.isprintable() and '{' not in text else _scalar(text, 'comment'))


def config_text(cfg: Union[Config, dict], header: Sequence[str] = ()) -> str:
    """The source of a config file: ``header`` as comment lines, then ``key = value`` per
    top-level key, in order. ``Config.fromfile`` of it gives back ``cfg``'s values.

    Args:
        cfg (Config | dict): The config.
        header (Sequence[str]): Lines of text for the comment at the top (any text:
            see :func:`comment`).

    Raises:
        ValueError: a top-level key that a config file cannot assign.
        TypeError: a value that is not a config literal (see :func:`py_literal`).
    """
    if isinstance(cfg, Config):
        cfg = cfg.to_dict()
    lines = [comment(line).rstrip() for line in header]
    for key, value in cfg.items():
        if not is_identifier(key) or key.startswith('__') or key in _RESERVED:
            raise ValueError(
                f'config key {key!r}: expected a Python identifier, not a keyword, '
                f"not starting with '__' nor one of {list(_RESERVED)} (a variable of the file)"
            )
        lines.append(f'{key} = ' + py_source(value, len(key) + 3, 0, key))
    return '\n'.join(lines) + '\n'


def dump_config(cfg: Union[Config, dict], path: str, header: Sequence[str] = ()) -> None:
    """Write :func:`config_text` of ``cfg`` to ``path`` (UTF-8): what ``Config(cfg).dump(path)``
    writes for a ``.py`` path, but every string a literal that loads back unchanged, and the
    keys in their order.

    Args:
        cfg (Config | dict): The config.
        path (str): The ``.py`` file.
        header (Sequence[str]): Comment lines at the top.
    """
    text = config_text(cfg, header)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def _key(key: Any, where: str) -> str:
    return py_literal(key, f'{where} key')


def _scalar(value: Any, where: str) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        # repr escapes every non-printable character (line breaks included) and writes no '{'
        # of its own: each '{' is the string's.
        return str.__repr__(value).replace('{', '\\x7b')
    if isinstance(value, numbers.Integral):
        return int.__repr__(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number == value:
            return float.__repr__(number)
        if math.isnan(number):
            return "float('nan')"
        if math.isinf(number) and number == value:
            return ('' if number > 0 else '-') + "float('inf')"
    raise TypeError(
        f'{where} = {value!r} ({type(value).__name__}): expected a config literal (dict, list, '
        'tuple, str, int, float, bool or None)'
    )


def _is_short(value: Any) -> bool:
    """A scalar, or a list or tuple of scalars: packed several a line."""
    if isinstance(value, (list, tuple)):
        return not any(isinstance(v, (dict, list, tuple)) for v in value)
    return not isinstance(value, dict)


def _packed(items: Sequence[str], pad: str) -> list:
    lines, line = [], ''
    for item in items:
        if line and ('\n' in line + item or len(pad) + len(line) + 1 + len(item) > WIDTH):
            lines.append(pad + line)
            line = ''
        line = f'{line} {item}' if line else item
    return lines + [pad + line]
