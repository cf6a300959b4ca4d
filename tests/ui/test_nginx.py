"""The dashboard for many shifters: two `dqm serve` processes behind a real nginx, configured with
deploy/nginx/dqm.conf (sticky sessions for the websocket), and `dqm serve --num-procs 2`.

Through nginx, pages load and a slider works (its websocket reaches its session's process); a
login made on one process holds on the other (the processes share DQM_COOKIE_SECRET)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from services import unavailable
from uihelpers import dashboard, drag_first_slider, free_port, wait_for_port

import demo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "correct horse battery staple"


def nginx_config(backends: list[int], port: int, directory: Path) -> str:
    """deploy/nginx/dqm.conf with the backends' ports and the port to listen on, inside a main
    configuration that keeps every file of nginx's under ``directory``."""
    site = (ROOT / "deploy" / "nginx" / "dqm.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in backends)
    site, found = re.subn(r"(?:    server 127\.0\.0\.1:\d+;\n)+", servers, site)
    assert found == 1, "the upstream block of deploy/nginx/dqm.conf changed"
    site, found = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    assert found == 1
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {directory / "access.log"};
{temp}
{site}
}}
"""


@contextmanager
def nginx(backends: list[int], port: int) -> Iterator[str]:
    """A real nginx on ``port`` in front of ``backends``; yields its URL."""
    if not Path(NGINX).is_file():
        unavailable("nginx", "the program nginx is not installed (Debian: nginx)")
    directory = Path(tempfile.mkdtemp(prefix="dqm-nginx-"))
    config = directory / "nginx.conf"
    config.write_text(nginx_config(backends, port, directory))
    command = [NGINX, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(process, port, directory / "error.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def behind_nginx(demo_data, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    credentials = tmp_path_factory.mktemp("nginx") / "users.json"
    credentials.write_text(json.dumps({"shifter": PASSWORD}))
    credentials.chmod(0o600)
    env = {**demo_data.env, "DQM_COOKIE_SECRET": "one key for every process of the dashboard"}
    proxy_port = free_port()
    # the address the browsers use (nginx's), the one the websockets come from
    env["DQM_ALLOW_WEBSOCKET_ORIGIN"] = f"127.0.0.1:{proxy_port}"
    options = ("--credentials", str(credentials), "--refresh", "0")
    with ExitStack() as stack:
        urls = [
            stack.enter_context(dashboard(env, *options, name=f"nginx-backend-{i}"))[0]
            for i in range(2)
        ]
        ports = [int(url.rsplit(":", 1)[1]) for url in urls]
        proxy = stack.enter_context(nginx(ports, proxy_port))
        yield {"proxy": proxy, "backends": urls}


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert "Traceback" not in page.content()


def test_pages_load_and_a_slider_works_through_nginx(behind_nginx, page, demo_data) -> None:
    proxy = behind_nginx["proxy"]
    _open(page, f"{proxy}/?page=runs")
    page.get_by_text(str(demo.FAULTY_RUN), exact=True).first.wait_for()
    _open(page, f"{proxy}/?run={demo.FAULTY_RUN}&tab=pmt")
    counts = page.get_by_text(re.compile(r"Dead [\d,]+ ·")).first
    counts.wait_for()
    assert re.search(r"Dead (\d+)", counts.inner_text()).group(1) == str(len(demo_data.dead))
    drag_first_slider(page, 0.5)
    page.get_by_text(re.compile(r"Dead 1\d,\d{3} ·")).first.wait_for()  # the server answered


def test_a_login_holds_across_the_processes(behind_nginx, page) -> None:
    first, second = behind_nginx["backends"]
    _open(page, f"{first}/login")
    page.fill("#username", "shifter")
    page.fill("#password", PASSWORD)
    page.click("#login-submit, button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")
    for url in (second, behind_nginx["proxy"], first):  # the cookie holds on each
        _open(page, f"{url}/?page=runs")
        page.get_by_text("Logged in as").first.wait_for()
        assert page.get_by_text("shifter").count() > 0


def test_one_server_of_several_processes_serves_pages_and_stops_whole(demo_data, page) -> None:
    options = ("--num-procs", "2", "--refresh", "0")
    with dashboard(demo_data.env, *options, name="num-procs") as (url, _log):
        for _ in range(3):  # pages and websockets land on either process
            _open(page, f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
            page.get_by_text(re.compile(r"Dead [\d,]+ ·")).first.wait_for()
    # stopped (SIGTERM to the first process): the processes it forked stop with it
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "a forked process of dqm serve outlived the first"
        time.sleep(0.2)
