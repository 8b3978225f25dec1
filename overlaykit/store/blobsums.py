"""Which compressed blobs a layer is in registries: Docker's v2metadata-by-diffid.

The store keeps a layer unpacked; a registry keeps it compressed, under the digest of the
compressed bytes. `pull` notes that digest and the repository it came from for the layer's
diff ID, and `push` notes the blob it uploaded, so that pushing again asks the registry for
those blobs (HEAD, or a mount from the other repository) instead of compressing and sending
the layer again, and the pushed manifest keeps its digest. One JSON list per diff ID, in
Docker's shape, [{"Digest": ..., "SourceRepository": ..., "HMAC": ""}], plus "MediaType".
"""

from overlaykit.store.files import read_json, write_json
from overlaykit.store.layout import Layout


def known(layout: Layout, diff_id: str) -> list[dict]:
    """The blobs noted for diff_id, newest first; entries of the wrong shape are left out."""
    try:
        entries = read_json(layout.v2metadata(diff_id), [])
    except ValueError:  # a damaged note costs an upload, nothing more
        return []
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("Digest"), str)
            and isinstance(e.get("SourceRepository"), str)]


def remember(layout: Layout, diff_id: str, digest: str, repository: str, media_type: str) -> None:
    """Note that repository (a full name: docker.io/library/alpine) has diff_id as blob digest,
    compressed as media_type says (Docker does not keep that; a zstd blob needs it)."""
    entries = [e for e in known(layout, diff_id)
               if (e["Digest"], e["SourceRepository"]) != (digest, repository)]
    entries.insert(0, {"Digest": digest, "SourceRepository": repository, "HMAC": "",
                       "MediaType": media_type})
    write_json(layout.v2metadata(diff_id), entries[:50])
