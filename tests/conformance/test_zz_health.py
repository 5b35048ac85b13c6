"""Runs last: the server survived everything above without a panic."""

import re

from wsclient import OP_TEXT


def test_server_alive_and_no_panics(server):
    c = server.connect()
    try:
        c.send_text(b"still here")
        assert c.recv_message() == (OP_TEXT, b"still here")
        c.close_normally()
    finally:
        c.close()
    log = server.log()
    assert "panicked" not in log, log[-3000:]
    assert not re.search(r"worker \d+ (died|exited|killed)", log, re.I), log[-3000:]
