"""Fixtures more than one test file uses."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from tests.helpers.training import prepare_data, train_with


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory) -> Path:
    """A run folder with every stage before the plan done (tests.helpers.training.BASE)."""
    return prepare_data(tmp_path_factory.mktemp("equivalence"))


@pytest.fixture(scope="session")
def one_process_checkpoint(prepared_data, tmp_path_factory) -> Path:
    """The reference training, 1 process x 8 x 1 through `accelerate launch`, that every other
    layout with the same effective batch must reproduce; trained once for all of them."""
    return train_with("one_process", prepared_data, tmp_path_factory.mktemp("one_process"))


def _is_this_machine(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Nothing rdtflow runs may reach the network: a connection to anything but this machine
    fails the test (processes started by a test get HF_HUB_OFFLINE=1, tests.helpers.workflow)."""
    connect = socket.socket.connect

    def local_only(self, address):
        if isinstance(address, tuple) and not _is_this_machine(address[0]):  # (host, port): an internet socket
            raise AssertionError(f"a test tried to connect to {address}: nothing may be downloaded")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
