# The deploy bench's app for Gunicorn (bench/deploys.ts), the same answers as deploy.mjs: GET /
# at once, a POST read whole first, GET /slow after 2 s. X-Worker is the pid.
import os
import time


def application(environ, start_response):
    n = len(environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0)))
    if environ.get('PATH_INFO') == '/slow':
        time.sleep(2)
    body = ('ok %d\n' % n).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body))), ('X-Worker', str(os.getpid()))])
    return [body]
