"""`info`: the store and what this kernel's overlayfs offers."""

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
@click.pass_obj
def info(layout, as_json: bool) -> None:
    """The store root, kernel, overlay module parameters, lowerdir+ support and counts."""
    import json
    import os
    from overlaykit.linux.overlay import module_parameters, supports_lowerdir_plus
    from overlaykit.store.images import list_images
    from overlaykit.store.layers import stored_chain_ids
    containers = os.listdir(layout.containers) if os.path.isdir(layout.containers) else []
    facts = {
        "Root": layout.root,
        "StorageDriver": "overlay2",
        "Kernel": os.uname().release,
        "Architecture": os.uname().machine,
        "Images": len(list_images(layout)),
        "Layers": len(stored_chain_ids(layout)),
        "Containers": len(containers),
        "LowerdirPlus": supports_lowerdir_plus(),
        "OverlayParameters": module_parameters(),
    }
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for key in ("Root", "StorageDriver", "Kernel", "Architecture", "Images", "Layers", "Containers"):
        click.echo(f"{key}: {facts[key]}")
    click.echo(f"Overlay lowerdir+ (new mount API, Linux 6.8+): "
               f"{'supported' if facts['LowerdirPlus'] else 'not supported'}")
    click.echo("Overlay module parameters:")
    for name, value in facts["OverlayParameters"].items():
        click.echo(f"  {name}: {value}")
