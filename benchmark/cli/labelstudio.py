"""The human arm: `bench labelstudio start|stop|status`, `setup-labelstudio`, `pull`, `simulate-coders`.

Thin wrappers over ``annotation.*``; the library modules explain the decisions (blinding, designs,
idempotency, why pull reads the task API).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.common import add_parser, study_of

# The names of annotation.simulate.BEHAVIOURS (listed here so that `bench --help` need not import it).
CODER_BEHAVIOURS = ("paper", "careful")
_CONNECT_HELP = ("Label Studio to use (default: $LABEL_STUDIO_URL, else the study's local server from "
                 "`bench labelstudio start`); the token comes from $LABEL_STUDIO_API_KEY")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "labelstudio", "run the study's local Label Studio server (127.0.0.1)", """\
start: start it on a free port with data under STUDY/labelstudio/ (first start ~20-45 s). An admin account
       and API token are generated on the first start and kept in STUDY/labelstudio/credentials (0600);
       they are never printed. Analytics, version checks and Sentry are off; signup needs an invite.
stop:  stop it (SIGTERM, then SIGKILL after 10 s).
status: say whether it is up and where.""")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--port", type=int, default=None, help="port to use (default: a free one)")
    p.set_defaults(func=_labelstudio)

    p = add_parser(subparsers, "setup-labelstudio", "create coder accounts, projects and tasks for the sample", """\
One project per coder (per arm): the open-source Label Studio has no roles, so coders are kept apart by
projects (see annotation/projects.py for the blinding decision). One task per sampled note holding only its
text, hadm_id and sample index: reference codes never enter Label Studio. New coders' sign-in address and
initial password are shown once, on the terminal, and stored nowhere.
Re-running adds nothing twice and resumes an interrupted import; the config of a project with annotations
is changed only with --force.
--evidence adds a second code picker to the page: the coder picks a code there and highlights the words of
the note that support it (each highlight is stored with its character offsets and code). --assist RUN
--show-evidence also pre-highlights, for every code RAC proposes, the note windows its attention picked:
the coder keeps a proposed code to accept it (with its highlights) or removes it to reject it.""")
    p.add_argument("--coders", metavar="EMAIL,...", default=None,
                   help="coder e-mails (default: the coders recorded by an earlier run)")
    p.add_argument("--design", default="split", metavar="split|overlap:K|all",
                   help="split: disjoint shares (default); overlap:K: K notes for every coder, the rest "
                        "split; all: every coder codes every note")
    p.add_argument("--ui", choices=("choices", "taxonomy"), default=None,
                   help="code picker: taxonomy (ICD-9: chapter > category > code; ICD-10: chapter > block > "
                        "category > code, PCS section > body system > root operation > code; with search; "
                        "default, the fast page: on the study's local server its tree is a JSON file that Label Studio serves; on "
                        "a server named by --url it is inlined in the config, a slower page) or choices (the "
                        "paper's flat list with a search filter, the slowest page)")
    p.add_argument("--assist", metavar="RUN", default=None,
                   help="also create a computer-assisted arm: separate projects whose tasks carry RUN's "
                        "predicted codes as pre-annotations")
    p.add_argument("--evidence", action="store_true",
                   help="coders also mark evidence: pick a code in a second picker, then highlight its words in the "
                        "note (kept on re-runs); `bench score` then scores the spans against MDACE and between coders")
    p.add_argument("--show-evidence", action="store_true",
                   help="with --assist: each proposed code comes with RAC's evidence windows highlighted in the "
                        "note (from the run's evidence.jsonl); implies --evidence")
    p.add_argument("--simulated", action="store_true",
                   help="the coders are simulated (demo): marked so in coders.json and every result")
    p.add_argument("--force", action="store_true",
                   help="change configs of projects that already have annotations; keep going when the "
                        "coders or design changed (nothing is deleted)")
    p.add_argument("--url", default=None, help=_CONNECT_HELP)
    p.set_defaults(func=_setup)

    p = add_parser(subparsers, "pull", "pull every coder's annotations through the API into one export", """\
Reads every project of the study (all tasks with their annotations), archives each raw response under
STUDY/exports/, and writes the merged export that `bench score --coders` reads (default
STUDY/exports/merged-latest.json; the assisted arm goes to a separate file beside it).""")
    p.add_argument("--out", type=Path, default=None, help="merged export to write")
    p.add_argument("--url", default=None, help=_CONNECT_HELP)
    p.set_defaults(func=_pull)

    p = add_parser(subparsers, "simulate-coders", "demo only: simulated coders code their tasks through the API", """\
Signs in as each coder account marked simulated (setup-labelstudio --simulated) and posts one annotation per
assigned task with that coder's own token, following a documented behaviour model (annotation/simulate.py):
  --behaviour paper    like the RAC paper's certified coders (Table 1, "Human coders": micro P 47.7,
                       R 12.1): about a quarter as many codes as the reference, half of them right, the
                       wrong ones near misses (sibling codes, frequent codes)
  --behaviour careful  coders who find most reference codes (micro P about 88, R about 61 on the demo):
                       under-coding, sibling-code errors and a few extra codes
Both draw lognormal lead times and flag or skip a few notes. Reference codes are read from the study files.
Runs only against the study's local server. Re-running codes only tasks that are still open; a study whose
tasks were coded with another behaviour or seed is refused (one Table 1, one behaviour).""")
    p.add_argument("--seed", type=int, default=0, help="seed of the behaviour model (default 0)")
    p.add_argument("--behaviour", choices=CODER_BEHAVIOURS, default="paper",
                   help="how the simulated coders code (default: paper, calibrated to the paper's Table 1)")
    p.set_defaults(func=_simulate)


def _labelstudio(args: argparse.Namespace) -> int:
    from annotation import server

    data_dir = study_of(args).labelstudio_dir
    if args.action == "start":
        creds = server.start(data_dir, port=args.port)
        print(f"Label Studio is up at {creds.url} (data: {data_dir}; admin credentials in {data_dir / 'credentials'})")
    elif args.action == "stop":
        print("stopped" if server.stop(data_dir) else f"no local Label Studio running for {data_dir}")
    else:
        state = server.status(data_dir)
        if state.running:
            print(f"running at {state.url} (pid {state.pid}, data: {data_dir})")
        else:
            print(f"not running (data: {data_dir})")
            return 1
    return 0


def _setup(args: argparse.Namespace) -> int:
    from annotation.accounts import ensure_coders, parse_emails, show_once
    from annotation.client import connect
    from annotation.config import DEFAULT_UI
    from annotation.projects import setup_projects
    from benchmark.labelstudio_files import load_state, read_coders
    from benchmark.errors import UserError

    study = study_of(args)
    data_dir = study.labelstudio_dir
    if args.coders:
        emails = parse_emails(args.coders)
    else:
        emails = sorted(c.email for c in read_coders(data_dir))
        if not emails:
            raise UserError("--coders: no coders recorded yet; give their e-mails, e.g. --coders a@x.org,b@y.org")
    ui = args.ui or next((p["ui"] for p in load_state(data_dir)["projects"]), DEFAULT_UI)
    evidence = args.evidence or bool((study.step("setup-labelstudio") or {}).get("evidence"))
    conn = connect(data_dir, args.url)
    coders, passwords = ensure_coders(conn, data_dir, emails, simulated=args.simulated)
    summary = setup_projects(study, conn, coders, design=args.design, ui=ui, assist=args.assist, force=args.force,
                             evidence=evidence, show_evidence=args.show_evidence)
    for p in summary.projects:
        print(f"project {p['id']:>4}  {p['arm']:<10}  {p['ui']:<8}  {len(p['task_ids']):>4} tasks  {p['coder']}")
    print(f"{summary.imported} task(s) imported, {summary.already_there} already there, "
          f"{summary.seconds:.1f} s; server {conn.url}")
    if passwords and not args.simulated:
        show_once(["New coder accounts (shown once, stored nowhere):"] +
                  [f"  {email}  sign in at {conn.url}/user/login/  initial password: {pw}"
                   for email, pw in passwords.items()])
    return 0


def _pull(args: argparse.Namespace) -> int:
    from annotation.client import connect
    from annotation.pull import pull

    study = study_of(args)
    summary = pull(study, connect(study.labelstudio_dir, args.url), out=args.out)
    for arm, path in summary.outputs.items():
        print(f"{arm}: {summary.n_tasks[arm]} tasks, {summary.n_annotations[arm]} annotations -> {path}")
    print(f"raw responses archived under {study.exports_dir}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from annotation.client import connect
    from annotation.simulate import simulate_coders

    study = study_of(args)
    summary = simulate_coders(study, connect(study.labelstudio_dir), seed=args.seed, behaviour=args.behaviour)
    for email, n in summary.per_coder.items():
        print(f"simulated coder {email} ({args.behaviour}): {n} annotation(s) posted, "
              f"{summary.already[email]} already done")
    return 0
