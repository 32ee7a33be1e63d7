# SPDX-License-Identifier: MIT
"""WSGI application of test/realserver.bats, served by gunicorn --preload.

Every request gets "pid PID": the gunicorn master that imported the module
(--preload imports it there, before the workers fork), i.e. the instance, so
a client can tell instances apart. With FDTEST_APP_BROKEN set, the import
raises: a new version that never becomes ready.
"""
import os

if os.environ.get("FDTEST_APP_BROKEN"):
    raise RuntimeError("FDTEST_APP_BROKEN is set: this version does not start")

BODY = ("pid %d\n" % os.getpid()).encode()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
