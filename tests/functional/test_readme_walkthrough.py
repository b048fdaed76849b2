"""The README's walkthrough ("A walk through the API with curl" and its
subsections) runs as written, top to bottom, against a real server.

Its ```sh blocks run in order in one bash process (`set -euo pipefail`),
from the checkout, with API and VAR naming a server started as `make run`
starts one (tests/server.py); a block preceded by
`<!-- walkthrough: not run (why) -->` is left out. The README's commands
are not changed: `curl` is a function that runs the real one and reports
each answer's status on stderr, and before each command the script notes
the README line it starts at. The walk fails when

- any command exits non-zero (so every wait, every `field` and the shell
  itself must succeed),
- an answer is a 5xx, or a 4xx that the comments of the command that made
  it (its lines in the README) do not name (`# 409 while ...`),
- curl could not read a file it was told to send (`--data-binary @missing`
  would send an empty body and "succeed"),
- or a block did not run to its end.
"""
import os
import re
import subprocess

from tests.server import REPOSITORY, Server

README = REPOSITORY / "README.md"
SECTION = "## A walk through the API with curl"
NOT_RUN = re.compile(r"^<!-- walkthrough: not run \((?P<why>[^)]+)\) -->$")
MARK = "@@walkthrough"
COMMENT = re.compile(r"(?:^|\s)#(?P<text>.*)$")
STATUS = re.compile(r"\b([1-5]\d\d)\b")
WRITES = re.compile(r"(?:>>?|\s-f|\s-o)\s*(\S+)")

PRELUDE = f"""set -euo pipefail
curl() {{ command curl -w "%{{stderr}}{MARK}-curl $__AT %{{http_code}} %{{method}} %{{url_effective}}\\n" "$@"; }}
__AT=0
"""


def walkthrough_blocks(text):
    """[(first line number, [lines])] of the section's ```sh blocks that run,
    and [(line number, why)] of those that do not."""
    lines = text.splitlines()
    start = lines.index(SECTION)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    blocks, skipped = [], []
    i = start
    while i < end:
        if lines[i] == "```sh":
            body_start = i + 1
            close = lines.index("```", body_start)
            previous = next(line for line in reversed(lines[start:i]) if line.strip())
            not_run = NOT_RUN.match(previous)
            if not_run:
                skipped.append((i + 1, not_run.group("why")))
            else:
                blocks.append((body_start + 1, lines[body_start:close]))
            i = close
        i += 1
    return blocks, skipped


def is_complete(source):
    """Whether bash would run `source` as it is (no open quote, loop,
    function, pipe or continuation): bash -n parses without running."""
    result = subprocess.run(["bash", "-n"], input=source, capture_output=True, text=True)
    return result.returncode == 0


def commands(first_line, lines):
    """[(README line of its start, [lines])]: the block split where bash would
    take a whole command."""
    groups, pending, start = [], [], None
    for offset, line in enumerate(lines):
        if not pending:
            start = first_line + offset
        pending.append(line)
        if not line.rstrip().endswith("\\") and is_complete("\n".join(pending) + "\n"):
            groups.append((start, pending))
            pending = []
    assert not pending, f"README.md line {start}: the block ends inside a command"
    return groups


def expected_statuses(group_lines):
    """The statuses the command's comments name."""
    return {int(code) for line in group_lines if (comment := COMMENT.search(line))
            for code in STATUS.findall(comment.group("text"))}


def script_and_expectations(text):
    blocks, _ = walkthrough_blocks(text)
    script, expected, ends = [PRELUDE], {}, []
    for first_line, lines in blocks:
        assert not any("-w " in line or "--write-out" in line for line in lines), (
            f"README.md block at line {first_line}: the test reads statuses with curl's -w; use -i to show one")
        for start, group in commands(first_line, lines):
            script.append(f"__AT={start}")
            script.extend(group)
            expected[start] = (expected_statuses(group), group)
        ends.append(first_line)
        script.append(f'echo "{MARK}-block {first_line}" >&2')
    return "\n".join(script) + "\n", expected, ends


def test_the_readme_names_why_a_block_does_not_run():
    blocks, skipped = walkthrough_blocks(README.read_text())
    assert len(blocks) >= 10
    assert all(why.strip() for _, why in skipped)
    assert len(skipped) <= 5, "most of the walkthrough runs"


def test_the_walk_writes_its_files_under_work():
    """Redirections and the key files it makes go to $WORK, never into the checkout."""
    blocks, _ = walkthrough_blocks(README.read_text())
    targets = [target for _, lines in blocks for line in lines
               for target in WRITES.findall(COMMENT.sub("", line))]
    assert targets and all(t.startswith("$WORK/") or t in ("/dev/null", "&2") for t in targets), targets


def test_the_splitting_finds_commands_and_their_comments():
    group = ["curl -s -X DELETE $X -H \"$AUTH\"   # 204 (409 while clusters use it)"]
    assert expected_statuses(group) == {204, 409}
    lines = ["for i in 1 2; do", "  curl -s $A | sed -n 1p   # 401, then 429", "done", "X=$(curl -s \\",
             "  $B)", "curl -s $C -d '{", "  \"a\": 1}'   # 201"]
    assert [start for start, _ in commands(10, lines)] == [10, 13, 15]
    assert expected_statuses(commands(10, lines)[0][1]) == {401, 429}


def test_the_walkthrough_runs_as_written(tmp_path):
    script, expected, ends = script_and_expectations(README.read_text())
    server = Server(tmp_path / "var")
    server.env.pop("PROVISIONER_ADMIN_PASSWORD", None)  # the walk reads the first start's password file
    server.start(timeout=90)
    try:
        (tmp_path / "walkthrough.sh").write_text(script)
        env = dict(os.environ, API=server.url, VAR=str(server.var_dir), TMPDIR=str(tmp_path))
        env.pop("PASSWORD", None)
        # files, not pipes: an agent the walk starts by hand must not hold the test's output open
        with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
            result = subprocess.run(["bash", str(tmp_path / "walkthrough.sh")], cwd=REPOSITORY, env=env,
                                    stdout=stdout, stderr=stderr, timeout=1100)
    finally:
        server.stop()
    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    story = f"--- stdout (end) ---\n{out[-6000:]}\n--- stderr (end) ---\n{err[-6000:]}\n"
    assert result.returncode == 0, f"the walkthrough failed (exit {result.returncode})\n{story}"
    assert "Couldn't read data from file" not in err, story
    calls = [line.split(" ", 4)[1:] for line in err.splitlines() if line.startswith(MARK + "-curl ")]
    assert len(calls) > 50, story
    wrong = []
    for at, status, method, url in calls:
        named, group = expected[int(at)]
        status = int(status)
        if status >= 500 or (status >= 400 and status not in named) or status < 100:
            wrong.append(f"README.md line {at}: {method} {url} answered {status}; its comment names "
                         f"{sorted(named) or 'no status'}:\n    " + "\n    ".join(group))
    assert not wrong, "\n".join(wrong) + "\n" + story
    finished = {int(line.split()[1]) for line in err.splitlines() if line.startswith(MARK + "-block ")}
    assert finished == set(ends), story
    # what the walk shows in its comments, seen here too
    assert "49999995000000" in out and "reads: sum 11889, mean 1189" in out, story
    assert ("DELETE", "204") in {(method, status) for _, status, method, url in calls
                                 if url.endswith("/v1/auth/token")}
