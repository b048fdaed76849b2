"""A TCP load balancer for the scale-out suite, as a team puts one in front
of its API processes: each connection goes to the next backend that accepts
it (round robin), so one killed API process only costs the connections it
held."""
import itertools
import socket
import threading

from tests.server import free_port


class Balancer:
    def __init__(self, backends):
        self.backends = list(backends)  # [(host, port)]
        self._turn = itertools.count()
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="balancer").start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _connect(self):
        start = next(self._turn)
        for offset in range(len(self.backends)):
            backend = self.backends[(start + offset) % len(self.backends)]
            try:
                return socket.create_connection(backend, timeout=2)
            except OSError:
                continue
        return None

    def _forward(self, client):
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self):
        self._closed.set()
        self._listener.close()


def pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((target, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass
