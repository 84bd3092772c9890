"""``gapsweep stack up|down|status|env|restart``: the local cluster (PostgreSQL, MLflow server, Ray
head, optional worker nodes) as ordinary processes, for machines without a Docker engine
(``orchestrator.stack``).

    gapsweep stack up                      # under <run dir>/stack; prints the URLs
    eval "$(gapsweep stack env)"           # RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, RAY_ADDRESS, …
    gapsweep submit sweeps/quickstart.yaml --address "$RAY_ADDRESS"
    gapsweep stack status
    gapsweep stack down

    gapsweep stack up --cpus 0 --nodes 3 --node-cpus 1   # a head that runs no task, 3 worker nodes
    gapsweep stack restart mlflow                        # start a stopped MLflow again, same port
"""

from __future__ import annotations

import shlex

from rich.table import Table

from gapsweep.arguments import bounded_int, positive_int
from gapsweep.terminal import console, err_console
from orchestrator import stack
from orchestrator.stack import PARTS

non_negative_int = bounded_int(1024, low=0)


def add_commands(commands) -> None:
    stack = commands.add_parser(
        "stack", help="a local cluster without Docker: PostgreSQL, MLflow server, Ray head",
        description="The topology of docker/docker-compose.yml as ordinary processes under "
                    "<run dir>/stack (ports on 127.0.0.1, logs in files, pids recorded): a "
                    "PostgreSQL cluster with the results database (migrated) and MLflow's, an "
                    "MLflow tracking server on it, and a Ray head whose jobs record there.")
    actions = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the stack (or report the running one)")
    up.add_argument("--cpus", type=positive_int, default=None,
                    help="CPUs the Ray head offers (default: all)")
    up.add_argument("--nodes", type=non_negative_int, default=0, metavar="N",
                    help="worker nodes to start beside the head, each a raylet process on this "
                         "machine (default: 0, the head is the whole cluster)")
    up.add_argument("--node-cpus", type=non_negative_int, default=1, metavar="C",
                    help="CPUs each worker node offers (default: 1)")
    up.add_argument("--node-gpus", type=non_negative_int, default=0, metavar="G",
                    help="GPUs each worker node offers (default: 0); Ray takes them on trust, so "
                         "on a machine without GPUs they are fake GPU resources for scheduling")
    actions.add_parser("down", help="stop every stack process (PostgreSQL's data stays)")
    restart = actions.add_parser("restart", help="start a stopped part (mlflow, postgres) of a "
                                                 "running stack again, on its port")
    restart.add_argument("part", choices=PARTS, metavar="PART",
                         help=f"the part to start again: {', '.join(PARTS)}")
    actions.add_parser("status", help="each service's (and worker node's) process, health, URL "
                                      "and log")
    actions.add_parser("env", help="shell exports for talking to the stack: "
                                   "eval \"$(gapsweep stack env)\"")
    for action in actions.choices.values():
        action.add_argument("--dir", default=None, metavar="DIR",
                            help="the stack's directory (default: <run dir>/stack)")
    stack.set_defaults(handler=cmd_stack, interrupted=lambda args: (
        "the services this command had started are stopped again; run gapsweep stack up again"
        if args.stack_command == "up" else None))


def cmd_stack(args) -> int:
    try:
        if args.stack_command == "up":
            with console.status("starting") as spinner:
                state, started = stack.up(args.dir, progress=lambda what: spinner.update(
                    f"starting {what}"), cpus=args.cpus, nodes=args.nodes,
                    node_cpus=args.node_cpus, node_gpus=args.node_gpus)
            console.print(("started" if started else "already running") +
                          f" in {state.root}:")
            _print_status(stack.status(args.dir))
            console.print('use it from this shell: eval "$(gapsweep stack env'
                          + (f" --dir {shlex.quote(args.dir)}" if args.dir else "") + ')"')
            return 0
        if args.stack_command == "down":
            stopped = stack.down(args.dir)
            console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
            return 0
        if args.stack_command == "restart":
            with console.status(f"starting {args.part}"):
                stack.restart(args.part, args.dir)
            console.print(f"restarted {args.part}:")
            _print_status({args.part: stack.status(args.dir)[args.part]})
            return 0
        if args.stack_command == "status":
            health = stack.status(args.dir)
            _print_status(health)
            return 0 if all(h["healthy"] for h in health.values()) else 1
        state = stack.load_state(stack.stack_root(args.dir))
        if state is None:
            raise stack.StackError(f"no stack in {stack.stack_root(args.dir)}; start one with "
                                   "'gapsweep stack up'")
        for key, value in state.environment().items():
            console.out(f"export {key}={shlex.quote(value)}")
        return 0
    except stack.StackError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        return 2


def _print_status(health: dict) -> None:
    table = Table(show_edge=False, box=None, header_style="bold")
    for column in ("service", "pid", "state", "url", "log"):
        table.add_column(column, no_wrap=True)
    for name, h in health.items():
        state = ("[green]healthy[/]" if h["healthy"] else
                 "[yellow]running, not answering[/]" if h["running"] else "[red]stopped[/]")
        table.add_row(name, str(h["pid"] or "-"), state, h["url"], h["log"])
    console.print(table)
