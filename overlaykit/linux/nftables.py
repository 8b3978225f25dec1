"""nftables through libnftables (Debian's libnftables1, the library behind `nft`), by ctypes.

A batch of nft commands is one transaction in the kernel: it applies whole or not at all, so a
container's port rules or a network's masquerade are never half made. The library is loaded
on first use only; `available()` says whether this machine has it, so a caller can do without
rules (as dockerd with --iptables=false) instead of failing.
"""

import ctypes
import json

_NFT_CTX_OUTPUT_HANDLE = 1 << 2
_NFT_CTX_OUTPUT_JSON = 1 << 4
_LIBRARY = "libnftables.so.1"

_context: list = []  # [(lib, ctx)] once loaded


def _load():
    if _context:
        return _context[0]
    lib = ctypes.CDLL(_LIBRARY, use_errno=True)
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise OSError(12, "cannot allocate an nftables context", "nftables")
    lib.nft_ctx_buffer_output(ctx)
    lib.nft_ctx_buffer_error(ctx)
    lib.nft_ctx_output_set_flags(ctx, _NFT_CTX_OUTPUT_HANDLE | _NFT_CTX_OUTPUT_JSON)
    _context.append((lib, ctx))
    return lib, ctx


def available() -> bool:
    """Whether libnftables can be loaded (the kernel's nf_tables is checked by the first batch)."""
    try:
        _load()
    except OSError:
        return False
    return True


def run(commands: str, what: str = "nftables") -> str:
    """Run a batch of nft commands as one transaction; returns nft's output (JSON for lists).

    Raises OSError naming what with nft's own first error line when the batch is refused.
    """
    lib, ctx = _load()
    if lib.nft_run_cmd_from_buffer(ctx, commands.encode()) != 0:
        error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace").strip()
        raise OSError(22, error.splitlines()[0] if error else "refused", what)
    return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()


def list_rules(family: str, table: str) -> list[dict]:
    """The rules of a table (each with family, table, chain, handle, comment); [] if it is not there."""
    try:
        output = run(f"list table {family} {table}")
    except OSError:
        return []
    return [item["rule"] for item in json.loads(output or '{"nftables": []}')["nftables"]
            if "rule" in item]


def delete_rules(family: str, table: str, rules: list[dict], what: str = "delete rules") -> None:
    """Delete these rules (as list_rules gave them) in one transaction."""
    if rules:
        run("".join(f"delete rule {family} {table} {r['chain']} handle {r['handle']}\n"
                    for r in rules), what)
