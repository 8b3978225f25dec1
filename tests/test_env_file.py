"""--env-file read as the Docker CLI reads it: bytes split at \\n, a UTF-8 BOM dropped, and a
file with a line that is not UTF-8 refused in one line (Docker refuses it too)."""

import json


def test_a_latin1_line_is_one_line_naming_the_file_and_line(cli, demo, tmp_path):
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(b"# settings\nA=1\nCITY=M\xfcnchen\n")
    proc = cli("run", "--rm", "--env-file", str(env_file), demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == f"overlaykit: run: --env-file {env_file}: line 3 is not valid UTF-8\n"
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []


def test_a_comment_that_is_not_utf8_refuses_the_file_too(cli, demo, tmp_path):
    env_file = tmp_path / "comment.env"
    env_file.write_bytes(b"# caf\xe9\nA=1\n")
    proc = cli("create", "--env-file", str(env_file), demo)
    assert (proc.returncode, proc.stderr) == (
        125, f"overlaykit: create: --env-file {env_file}: line 1 is not valid UTF-8\n")


def test_utf8_values_crlf_lines_and_a_bom_are_read(cli, demo, tmp_path):
    env_file = tmp_path / "utf8.env"
    env_file.write_bytes("\ufeffCITY=München\r\n  GREETING=grüß dich\r\n".encode())
    proc = cli("run", "--rm", "--env-file", str(env_file), demo, "sh", "-c",
               'echo "$CITY|$GREETING|"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "München|grüß dich|\n"
