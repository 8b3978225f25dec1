"""Docker's reference normalisation: every spelling of one name is one stored tag."""

import pytest

from overlaykit.errors import OverlaykitError
from overlaykit.image.reference import canonical, normalize, parse

SPELLINGS = [
    ("alpine", "alpine:latest", "docker.io/library/alpine:latest"),
    ("alpine:3.19", "alpine:3.19", "docker.io/library/alpine:3.19"),
    ("library/alpine", "alpine:latest", "docker.io/library/alpine:latest"),
    ("docker.io/library/alpine:latest", "alpine:latest", "docker.io/library/alpine:latest"),
    ("index.docker.io/library/alpine", "alpine:latest", "docker.io/library/alpine:latest"),
    ("user/app:1", "user/app:1", "docker.io/user/app:1"),
    ("docker.io/user/app:1", "user/app:1", "docker.io/user/app:1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("127.0.0.1:5000/a/b:x", "127.0.0.1:5000/a/b:x", "127.0.0.1:5000/a/b:x"),
]


@pytest.mark.parametrize("ref,familiar,full", SPELLINGS)
def test_every_spelling_normalises_to_the_familiar_tag_and_the_canonical_name(ref, familiar, full):
    assert normalize(ref) == familiar
    assert canonical(ref) == full


def test_a_digest_reference_parses_but_is_not_a_tag():
    ref = "alpine@sha256:" + "ab" * 32
    assert parse(ref) == ("docker.io", "library/alpine", None, "sha256:" + "ab" * 32)
    assert canonical(ref) == "docker.io/library/alpine@sha256:" + "ab" * 32
    with pytest.raises(OverlaykitError, match="invalid reference"):
        normalize(ref)


@pytest.mark.parametrize("ref", ["", "Alpine", "alpine:", "alpine:-x", "a//b", "alpine@sha256:12",
                                 "ab" * 32, "docker.io/" + "ab" * 32])
def test_what_docker_refuses_is_refused_with_the_reference_named(ref):
    with pytest.raises(OverlaykitError, match="invalid reference"):
        normalize(ref)
