"""rename: a container's name changed in its record, as `docker rename` does (running or not).

Under the store lock, so two renames (or a create) cannot take the same name; the new name
follows Docker's rule and must be free. Only config.json is rewritten (atomically): the
supervisor of a running container writes state.json meanwhile. The hostname stays, as in Docker.
"""

from overlaykit.errors import OverlaykitError
from overlaykit.store import containers
from overlaykit.store.files import write_json
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock


def rename(layout: Layout, old: str, new: str) -> None:
    with store_lock(layout):
        container = containers.find(layout, old)
        name = new.lstrip("/")
        if name == container.name:
            raise OverlaykitError("rename: Renaming a container with the same name as its "
                                  "current name")
        containers.check_name(layout, name, "rename")
        write_json(layout.container_config(container.id), {**container.config, "Name": "/" + name})
