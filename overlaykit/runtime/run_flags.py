"""The HostConfig fields of --init, --add-host, --dns*, --shm-size and --ulimit, each checked
by its own module before create makes anything."""

from overlaykit.runtime import etc_options, init, shm, ulimits


def host_config(options, command: str) -> dict:
    """options: the RunOptions of run or create."""
    return {**init.check(options.init, command),
            **etc_options.host_config(options.add_host, options.dns, options.dns_search,
                                      options.dns_option, command),
            **shm.host_config(options.shm_size, command),
            **ulimits.host_config(options.ulimits, command)}
