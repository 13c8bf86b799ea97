"""The command line's one definition: every option as plain data.

Two readers build on this table and nothing else: cli.py parses it on every container start
(cheaply, without click), and clickapp.py turns it into a click command when a person needs
one (--help, --version, shell completion). Adding an option means adding a row here, a field
to Config, and (if it is not a plain copy) a line in config.build_config.
"""

from __future__ import annotations

from graceinit import config as _c

COMPLETION_VARIABLE = "_GRACEINIT_COMPLETE"  # click's shell completion protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Tuple

ENV_PREFIX = "GRACEINIT_"

def envvar_for(option: str) -> str:
    """The GRACEINIT_* variable of a long option: --stop-delay -> GRACEINIT_STOP_DELAY."""
    return ENV_PREFIX + option.lstrip("-").upper().replace("-", "_")


# How an option takes its value.
FLAG = "flag"  # --notify; the variable is a boolean
SWITCH = "switch"  # --process-group / --no-process-group; the variable is a boolean
COUNT = "count"  # -v, -vv; the variable is a count or a boolean
VALUE = "value"  # --stop-delay 5; the last one given wins
MULTIPLE = "multiple"  # --post-hook A --post-hook B; the variable is split by `splitter`


class Option:
    __slots__ = ("dest", "flags", "off_flags", "kind", "parser", "default", "shown_default",
                 "metavar", "help", "splitter", "env_help")

    def __init__(
        self,
        dest: str,
        flags: Tuple[str, ...],
        kind: str,
        help: str,
        *,
        parser: Optional[Callable[[str], Any]] = None,
        default: Any = None,
        shown_default: str = "none",
        metavar: str = "",
        off_flags: Tuple[str, ...] = (),
        splitter: Optional[str] = None,
        env_help: str = "",
    ) -> None:
        self.dest = dest  # the name the parsed value goes under (usually a Config field)
        self.flags = flags  # short first, then long
        self.off_flags = off_flags  # for a SWITCH: the flags that turn it off
        self.kind = kind
        self.parser = parser  # text -> value, or ConfigError(reason)
        self.default = default  # the parsed value when neither argv nor the variable gives one
        self.shown_default = shown_default
        self.metavar = metavar
        self.help = help
        self.splitter = splitter  # MULTIPLE: how the variable separates values
        self.env_help = env_help  # what the variable's value looks like, when not obvious

    @property
    def long(self) -> str:
        return self.flags[-1]

    @property
    def envvar(self) -> str:
        return envvar_for(self.long)

    @property
    def takes_value(self) -> bool:
        return self.kind in (VALUE, MULTIPLE)


_HOOK_ENV = "one command per line"
_LIST_ENV = "comma-separated"
_BOOL_ENV = _c.BOOLEAN_SPELLINGS
_DURATION = "SECONDS"

TABLE: Tuple[Option, ...] = (
    Option("process_group", ("-g", "--process-group"), SWITCH, off_flags=("-G", "--no-process-group"),
           default=True, shown_default="on", env_help=_BOOL_ENV,
           help="Run the child in its own session and process group; forward signals to the group."),
    Option("single_child", ("-c", "--single-child"), FLAG, default=False, shown_default="off", env_help=_BOOL_ENV,
           help="Forward signals to the direct child only."),
    Option("rewrite", ("-r", "--rewrite"), MULTIPLE, parser=_c.parse_rewrite, default=(), metavar="FROM:TO",
           splitter=",", env_help=_LIST_ENV,
           help="Rewrite a signal before forwarding it; TO=0 drops it. Repeatable."),
    Option("subreaper", ("-s", "--subreaper"), SWITCH, off_flags=("-S", "--no-subreaper"),
           default=None, shown_default="on when not PID 1", env_help=_BOOL_ENV,
           help="Become a child subreaper when not PID 1, so orphans are still reaped."),
    Option("pdeathsig", ("--pdeathsig",), VALUE, parser=_c.parse_signal, metavar="SIG",
           help="Receive SIG when graceinit's parent dies."),
    Option("remap_exit", ("-e", "--remap-exit"), MULTIPLE, parser=_c.parse_exit_remap, default=(),
           metavar="FROM:TO", splitter=",", env_help=_LIST_ENV,
           help="Rewrite the final exit status, e.g. 143:0 (0-255). Repeatable."),
    Option("pre_hook", ("--pre-hook",), MULTIPLE, parser=_c.parse_optional_hook, default=(), metavar="CMD",
           splitter="\n", env_help=_HOOK_ENV,
           help="Run before the child; non-zero exit: the child is not started. Repeatable."),
    Option("pre_hook_dir", ("--pre-hook-dir",), VALUE, parser=_c.parse_path, metavar="DIR",
           help="Run every executable file in DIR, in name order, before the child."),
    Option("stop_signals", ("--stop-signals",), VALUE, parser=_c.parse_stop_signals,
           default=_c.DEFAULT_STOP_SIGNALS, shown_default="TERM,INT", metavar="SIG[,...]", env_help=_LIST_ENV,
           help="The signals that run the stop sequence (e.g. TERM,INT,QUIT for nginx's STOPSIGNAL);"
           " -r still decides what the child gets."),
    Option("stop_hook", ("--stop-hook",), MULTIPLE, parser=_c.parse_optional_hook, default=(), metavar="CMD",
           splitter="\n", env_help=_HOOK_ENV,
           help="Run as soon as the stop signal arrives, before the stop delay. Repeatable."),
    Option("stop_delay", ("--stop-delay",), VALUE, parser=_c.parse_stop_delay, default=0.0, shown_default="0",
           metavar="SECONDS|auto",
           help="Keep the child serving this long after the stop signal, then forward it. 'auto':"
           " until its connections drain, between --stop-delay-min and --stop-delay-max."),
    Option("stop_delay_min", ("--stop-delay-min",), VALUE, parser=_c.parse_duration, default=0.0,
           shown_default="0", metavar=_DURATION,
           help="With --stop-delay auto: serve at least this long."),
    Option("stop_delay_max", ("--stop-delay-max",), VALUE, parser=_c.parse_duration, default=30.0,
           shown_default="30", metavar=_DURATION,
           help="With --stop-delay auto: serve at most this long."),
    Option("drain_ignore", ("--drain-ignore",), MULTIPLE, parser=_c.parse_cidrs, default=(),
           metavar="CIDR|:PORT[,...]", env_help=_LIST_ENV,
           help="With --stop-delay auto: connections from these networks, or to these ports of"
           " the app (:8081), do not hold the stop; a bare address is /32 or /128. Repeatable."),
    Option("ledger", ("--ledger",), SWITCH, off_flags=("--no-ledger",), default=True, shown_default="on",
           env_help=_BOOL_ENV,
           help="Count, in the termination report, the connections the kernel turned away while"
           " the child stopped (reads /proc/net and sock_diag from the stop signal on)."),
    Option("grace_period", ("--grace-period",), VALUE, parser=_c.parse_grace, default=None,
           shown_default="unlimited", metavar=_DURATION + "|unlimited",
           help="After forwarding the stop signal, SIGKILL the child's group after this long."),
    Option("post_hook", ("--post-hook",), MULTIPLE, parser=_c.parse_optional_hook, default=(), metavar="CMD",
           splitter="\n", env_help=_HOOK_ENV,
           help="Run after the child has exited, whatever the cause. Repeatable."),
    Option("post_hook_dir", ("--post-hook-dir",), VALUE, parser=_c.parse_path, metavar="DIR",
           help="Run every executable file in DIR, in name order, after the child."),
    Option("hook_timeout", ("--hook-timeout",), VALUE, parser=_c.parse_duration, default=30.0,
           shown_default="30", metavar=_DURATION,
           help="Kill a hook (and its children) running longer than this; it counts as failed."),
    Option("leftover_grace", ("--leftover-grace",), VALUE, parser=_c.parse_duration, default=5.0,
           shown_default="5", metavar=_DURATION,
           help="After the child exits, leftover processes get SIGTERM, then SIGKILL after this long."),
    Option("termination_budget", ("--termination-budget",), VALUE, parser=_c.parse_duration,
           metavar=_DURATION,
           help="Your terminationGracePeriodSeconds: cut the grace period short so post hooks fit."),
    Option("ready_file", ("--ready-file",), VALUE, parser=_c.parse_path, metavar="PATH",
           help="Created once the child runs; removed the instant the stop signal arrives."),
    Option("ready_port", ("--ready-port",), VALUE, parser=_c.parse_ready_port, metavar="[HOST:]PORT",
           help="Answer HTTP readiness probes on this port of graceinit's own: 200 while the"
           " child is ready, 503 from the stop signal on; /live is 200 while graceinit runs."),
    Option("stdout", ("--stdout",), VALUE, parser=_c.parse_path, metavar="PATH", shown_default="inherit",
           help="The child's stdout goes to PATH (append; created 0640)."),
    Option("stderr", ("--stderr",), VALUE, parser=_c.parse_path, metavar="PATH", shown_default="inherit",
           help="The child's stderr goes to PATH (append; created 0640)."),
    Option("link_stdout", ("--link-stdout",), VALUE, parser=_c.parse_path, metavar="PATH",
           help="Make PATH a symlink to graceinit's stdout."),
    Option("link_stderr", ("--link-stderr",), VALUE, parser=_c.parse_path, metavar="PATH",
           help="Make PATH a symlink to graceinit's stderr."),
    Option("listen", ("--listen",), MULTIPLE, parser=_c.parse_listen, default=(), metavar="[NAME=]ADDRESS",
           splitter=",", env_help=_LIST_ENV,
           help="Bind tcp://HOST:PORT, tcp://[::]:PORT or unix:/PATH and pass it to the child as"
           " fd 3, 4, ... (systemd socket activation: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID)."),
    Option("notify", ("--notify",), FLAG, default=False, shown_default="off", env_help=_BOOL_ENV,
           help="Give the child a NOTIFY_SOCKET (sd_notify); READY=1 makes it ready."),
    Option("restart_signal", ("--restart-signal",), VALUE, parser=_c.parse_signal, metavar="SIG",
           help="On SIG, start a new child on the same sockets and stop the old one once the new"
           " one is ready (zero-downtime restart). Not TERM, INT, CHLD, KILL or STOP."),
    Option("ready_timeout", ("--ready-timeout",), VALUE, parser=_c.parse_duration, default=10.0,
           shown_default="10", metavar=_DURATION,
           help="On restart: how long to wait for READY=1 (with --notify), or how long the new"
           " child must stay up to count as ready (without)."),
    Option("log_format", ("--log-format",), VALUE, parser=_c.parse_log_format, default="text",
           shown_default="text", metavar="text|json",
           help="graceinit's own messages on stderr: text lines, or one JSON object per line."),
    Option("verbose", ("-v", "--verbose"), COUNT, default=0, shown_default="0",
           env_help=f"0-{_c.MAX_VERBOSITY}, or {_BOOL_ENV}",
           help=f"Say more; repeat for debug output (more than {_c.MAX_VERBOSITY} counts as {_c.MAX_VERBOSITY})."),
    Option("quiet", ("-q", "--quiet"), FLAG, default=False, shown_default="off", env_help=_BOOL_ENV,
           help="Only errors."),
)

HELP_FLAGS = ("-h", "--help")
VERSION_FLAGS = ("--version",)

# Variables graceinit itself sets for its hooks: present in a nested graceinit's environment
# for good reason, never a misspelled option.
SET_FOR_HOOKS = ("GRACEINIT_PHASE", "GRACEINIT_CHILD_PID", "GRACEINIT_EXIT_CODE", "GRACEINIT_EXIT_SIGNAL")

EXIT_STATUSES = (
    ("0, or the app's status", "the app exited (-e FROM:TO applies last, to every row)"),
    ("128+N", "the app was killed by signal N (137 after the grace period's SIGKILL), or stop"
              " signal N arrived before the app was started"),
    ("2", "bad command line or configuration (one line on stderr, nothing started); also"
          " --help or --version that could not be written"),
    ("70", "graceinit hit an internal error (the app's group is SIGKILLed first)"),
    ("71", "the system refused a process or a descriptor to start the app or a pre hook (fork"
           " failed: RLIMIT_NPROC or the pids cgroup's pids.max; too many open files)"),
    ("124", "a pre hook timed out (a failing pre hook gives its own status)"),
    ("126", "COMMAND exists but cannot be executed"),
    ("127", "COMMAND not found"),
)


def one_line(message: str) -> str:
    return " ".join(message.split())
