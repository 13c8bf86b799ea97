"""The inits a test can be run against, and how to ask each for a feature.

graceinit is the init under test; tini, dumb-init (Debian packages, in
/usr/bin) and ``naive`` (tests/helpers/naive_init.py, a deliberately
wrong hand-written wrapper) are *comparisons*: running a test against them
shows that the test passes for an init that has the behaviour and fails for
one that lacks it.  Comparison params carry the ``compare`` marker and are
deselected unless pytest runs with ``--compare`` (or ``-m compare``).

Use in a test module::

    from helpers.inits import init_params

    @pytest.mark.parametrize("init", init_params(
        xfail={"tini": "tini forwards to the child only"}), indirect=True)
    def test_x(init, procs):
        sup = procs.start(init.cmd(*init.group, "--", "sleep", "9"))

``xfail`` entries are strict: the comparison init *must* fail the test, which
is the proof that the test detects the missing behaviour.  ``skip`` is for
inits that cannot express the test at all (no such option).
"""
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import pytest

from .launch import helper

COMPARISONS = ("tini", "dumb-init", "naive")


@dataclass
class InitSpec:
    name: str
    argv: List[str]                       # how to invoke it
    group: List[str] = field(default_factory=list)     # forward to the child's process group
    single: List[str] = field(default_factory=list)    # forward to the direct child only
    subreaper: Optional[List[str]] = None  # be a child subreaper when not PID 1 (None: can't)
    rewrite: Optional[Callable[[int, int], List[str]]] = None  # (from, to) -> args
    remap: Optional[Callable[[int, int], List[str]]] = None    # exit status from -> to

    def cmd(self, *args):
        """self.argv + args (stringified).  Put "--" before the command."""
        return list(self.argv) + [str(a) for a in args]

    def require(self, feature):
        """Skip the test when this init has no way to express `feature`."""
        if getattr(self, feature) is None:
            pytest.skip("%s has no %s option" % (self.name, feature))
        return getattr(self, feature)


def make_spec(name, graceinit_bin):
    if name == "graceinit":
        return InitSpec(
            name, [str(graceinit_bin)], group=[], single=["-c"], subreaper=[],
            rewrite=lambda a, b: ["-r", "%d:%d" % (int(a), int(b))],
            remap=lambda a, b: ["-e", "%s:%s" % (a, b)])
    if name == "tini":
        return InitSpec(name, ["/usr/bin/tini"], group=["-g"], single=[], subreaper=["-s"],
                        remap=lambda a, b: ["-e", str(a)])  # tini: TO is always 0
    if name == "dumb-init":
        return InitSpec(name, ["/usr/bin/dumb-init"], group=[], single=["-c"], subreaper=None,
                        rewrite=lambda a, b: ["-r", "%d:%d" % (int(a), int(b))])
    if name == "naive":
        return InitSpec(name, [sys.executable, helper("naive_init.py")], group=[], single=[])
    raise ValueError(name)


def available(name):
    if name in ("graceinit", "naive"):
        return True
    return os.access(make_spec(name, "").argv[0], os.X_OK)


def init_params(xfail=None, skip=None, only=None):
    """pytest.param list for an indirect ``init`` fixture: graceinit (always)
    plus the comparisons, marked ``compare`` (deselected by default).

    xfail: {name: reason} -- that init lacks the behaviour; strict xfail.
    skip:  {name: reason} -- the test cannot be expressed for that init.
    only:  iterable of comparison names to include (default: all).
    """
    xfail = xfail or {}
    skip = skip or {}
    params = [pytest.param("graceinit", id="graceinit")]
    for name in COMPARISONS:
        if only is not None and name not in only:
            continue
        marks = [pytest.mark.compare]
        if not available(name):
            marks.append(pytest.mark.skip(reason="%s not installed" % name))
        elif name in skip:
            marks.append(pytest.mark.skip(reason=skip[name]))
        elif name in xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=xfail[name]))
        params.append(pytest.param(name, id=name, marks=marks))
    return params
