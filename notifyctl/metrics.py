"""What every Prometheus registry of ours holds besides its own metrics.

The API and the daemon each keep their own ``CollectorRegistry`` (so that several in one
process, as in the tests, do not collide), which leaves out what prometheus-client's
default registry gives every Python process. ``registry()`` puts it back: the standard
``process_*`` and ``python_*`` series, and ``notifyctl_build_info{version}`` (always 1),
the usual way to see which version runs and to join it onto other series.
"""

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from notifyctl import __version__

# The *_created series double every family for little use; off for the API and daemon alike.
disable_created_metrics()


def registry() -> CollectorRegistry:
    """A new registry with the process, platform and garbage-collector collectors and
    ``notifyctl_build_info``."""
    fresh = CollectorRegistry()
    ProcessCollector(registry=fresh)
    PlatformCollector(registry=fresh)
    GCCollector(registry=fresh)
    build = Gauge(
        "notifyctl_build_info",
        "Always 1; the version of notifyctl this process runs",
        ["version"],
        registry=fresh,
    )
    build.labels(__version__).set(1)
    return fresh
