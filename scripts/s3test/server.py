#!/usr/bin/env python3
"""Starts and stops the S3-compatible server the object-store tests use.

    server.py start DIR    start moto and the fault proxy; print the environment for the tests
    server.py stop DIR     stop what `start DIR` started

`start` runs moto's server mode on a free loopback port with signature
checking on: INITIAL_NO_AUTH_ACTION_COUNT=6 lets exactly six requests in
unchecked, which create an IAM user, give it every S3 permission and make it
an access key, then create a role with every S3 permission and assume it
(temporary credentials with a session token); every later request must be
signed right. Then it starts
fault_proxy.py in front of moto, and writes DIR/env (a shell file of
`export NAME=VALUE` lines, also printed) with:

    PGSNAP_TEST_S3_ENDPOINT           moto, http://127.0.0.1:PORT
    PGSNAP_TEST_S3_PROXY              the fault proxy in front of it
    PGSNAP_TEST_S3_PROXY_SCRIPT       fault_proxy.py, for tests that start one of their own
    PGSNAP_TEST_S3_ADMIN_SCRIPT       admin.py: buckets, objects, uploads, faults
    PGSNAP_TEST_S3_PYTHON             the Python that runs moto, for both scripts
    PGSNAP_TEST_S3_ACCESS_KEY_ID      the access key
    PGSNAP_TEST_S3_SECRET_ACCESS_KEY  its secret
    PGSNAP_TEST_S3_SESSION_ACCESS_KEY_ID, PGSNAP_TEST_S3_SESSION_SECRET_ACCESS_KEY,
    PGSNAP_TEST_S3_SESSION_TOKEN      the assumed role's temporary credentials

Everything listens on 127.0.0.1 only. The processes' ids are in DIR/*.pid.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# Unsigned IAM requests reach IAM only if an Authorization header names the
# service; within the unchecked budget its signature is not looked at.
IAM_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/iam/aws4_request, "
            "SignedHeaders=host, Signature=00")
STS_AUTH = IAM_AUTH.replace("/iam/", "/sts/")
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'
POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(directory, name, argv, env=None):
    log = open(os.path.join(directory, f"{name}.log"), "wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    with open(os.path.join(directory, f"{name}.pid"), "w") as f:
        f.write(str(process.pid))
    return process


def wait_until_up(url, process, name, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"s3test: {name} exited at start (status {process.returncode}); see its log")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"s3test: {name} did not answer at {url} within {seconds} s")


def iam(endpoint, auth=IAM_AUTH, version="2010-05-08", **params):
    body = urllib.parse.urlencode(dict(params, Version=version)).encode()
    request = urllib.request.Request(endpoint + "/", data=body, method="POST", headers={
        "Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
    return urllib.request.urlopen(request, timeout=30).read().decode()


def element(document, name):
    found = re.search(f"<{name}>([^<]+)</{name}>", document)
    if not found:
        sys.exit(f"s3test: moto's answer has no {name}")
    return found.group(1)


def start(directory):
    os.makedirs(directory, exist_ok=True)
    try:
        import moto.server  # noqa: F401
    except ImportError:
        sys.exit("s3test: moto is not installed (pip install 'moto[server]'; scripts/setup.sh does it)")
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="6")
    moto = spawn(directory, "moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env)
    endpoint = f"http://127.0.0.1:{port}"
    # /moto-api/ does not count against the unchecked budget.
    wait_until_up(endpoint + "/moto-api/", moto, "moto")
    iam(endpoint, Action="CreateUser", UserName="pgsnap-tests")
    iam(endpoint, Action="PutUserPolicy", UserName="pgsnap-tests", PolicyName="s3-all", PolicyDocument=POLICY)
    key = iam(endpoint, Action="CreateAccessKey", UserName="pgsnap-tests")
    iam(endpoint, Action="CreateRole", RoleName="pgsnap-tests", AssumeRolePolicyDocument=TRUST)
    iam(endpoint, Action="PutRolePolicy", RoleName="pgsnap-tests", PolicyName="s3-all", PolicyDocument=POLICY)
    session = iam(endpoint, auth=STS_AUTH, version="2011-06-15", Action="AssumeRole",
                  RoleArn="arn:aws:iam::123456789012:role/pgsnap-tests", RoleSessionName="pgsnap-tests")
    proxy_port = free_port()
    script = os.path.join(HERE, "fault_proxy.py")
    proxy = spawn(directory, "proxy", [sys.executable, script, str(proxy_port), str(port)])
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    wait_until_up(proxy_url + "/__fault", proxy, "fault proxy")
    values = {
        "PGSNAP_TEST_S3_ENDPOINT": endpoint,
        "PGSNAP_TEST_S3_PROXY": proxy_url,
        "PGSNAP_TEST_S3_PROXY_SCRIPT": script,
        "PGSNAP_TEST_S3_ADMIN_SCRIPT": os.path.join(HERE, "admin.py"),
        "PGSNAP_TEST_S3_PYTHON": sys.executable,
        "PGSNAP_TEST_S3_ACCESS_KEY_ID": element(key, "AccessKeyId"),
        "PGSNAP_TEST_S3_SECRET_ACCESS_KEY": element(key, "SecretAccessKey"),
        "PGSNAP_TEST_S3_SESSION_ACCESS_KEY_ID": element(session, "AccessKeyId"),
        "PGSNAP_TEST_S3_SESSION_SECRET_ACCESS_KEY": element(session, "SecretAccessKey"),
        "PGSNAP_TEST_S3_SESSION_TOKEN": element(session, "SessionToken"),
    }
    text = "".join(f"export {k}='{v}'\n" for k, v in values.items())
    with open(os.path.join(directory, "env"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


def stop(directory):
    for name in ("proxy", "moto"):
        path = os.path.join(directory, f"{name}.pid")
        try:
            with open(path) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.remove(path)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    (start if sys.argv[1] == "start" else stop)(sys.argv[2])
