"""The history store's bad inputs: a file that is not a database, a read-only store, a URL whose query
carries a password or an option the driver does not know — one line each, no secret shown."""

import pytest
from typer.testing import CliRunner

from edgekit.cli.app import app
from edgekit.errors import BadInputError
from edgekit.store import open_store


@pytest.mark.parametrize("content", [b"hello, not a database\n", b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_a_file_that_is_not_a_database_is_one_line_and_untouched(tmp_path, content):
    store = tmp_path / "history.db"
    store.write_bytes(content)
    result = CliRunner().invoke(app, ["report", "--db", f"sqlite:///{store}"])
    assert result.exit_code == 2 and result.output.startswith("error: cannot open the store")
    assert "file is not a database" in result.output and len(result.output.strip().splitlines()) == 1
    assert store.read_bytes() == content


def test_a_read_only_store_is_one_line(tmp_path):
    """Opened read-only (SQLite's mode=ro: root ignores a file's mode bits, SQLite's flag it does not)."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    open_store(url).close()
    with open_store(f"sqlite:///file:{tmp_path / 'h.db'}?mode=ro&uri=true") as store, \
            pytest.raises(BadInputError, match="cannot write to the store .*: attempt to write a readonly database"):
        store.start_run("s", "k", {}, {})


def test_a_read_only_store_folder_is_one_line(tmp_path):
    """As root a read-only file is still writable; a store that SQLite cannot write for another reason
    (here: the path is a folder) is one line too."""
    folder = tmp_path / "h.db"
    folder.mkdir()
    with pytest.raises(BadInputError, match="cannot open the store"):
        open_store(f"sqlite:///{folder}")


def test_secrets_in_the_url_never_appear_and_unknown_options_are_one_line():
    url = "postgresql+psycopg://user@127.0.0.1:1/db?password=SECRET123&bogusparam=1"
    with pytest.raises(BadInputError) as error:
        open_store(url)
    message = str(error.value)
    assert "SECRET123" not in message and "password=***" in message
    assert 'invalid connection option "bogusparam"' in message and "\n" not in message
    result = CliRunner().invoke(app, ["report", "--db", url])
    assert result.exit_code == 2 and "SECRET123" not in result.output
