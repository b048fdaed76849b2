"""A run's output, kept in the database as it is produced, so that every
process sharing the database reads the same text, also while the run is
running: the bytes ansible-runner writes to its artifacts/run/stdout, in
append-only chunks.

Each append stores new chunks (separate small records) and never rewrites an
old one; a line index (the line each chunk starts in) lets a range of lines be
read without loading the chunks before it. A run keeps at most
MAX_OUTPUT_BYTES: what comes after is dropped, and one last line says how much
was."""
from BTrees.IIBTree import IIBTree
from BTrees.IOBTree import IOBTree
from persistent import Persistent

MiB = 1024 * 1024
MAX_OUTPUT_BYTES = 64 * MiB  # of a run's output kept in the database; the rest is dropped and counted
CHUNK_BYTES = 256 * 1024  # the largest chunk, one database record each


class OutputChunk(Persistent):
    """A piece of the output, never changed once stored."""

    def __init__(self, data, first_line):
        self.data = data  # bytes
        self.first_line = first_line  # the line its first byte is in, counted from 0


class RunOutput(Persistent):
    """The output of one run. Lines end at b"\\n" (the lines that events'
    start_line and end_line count); the last one may be unfinished while the
    run writes it."""

    def __init__(self):
        self.chunks = IOBTree()  # 0, 1, ... -> OutputChunk, in order
        self.line_index = IIBTree()  # a chunk's first line -> the last chunk starting in that line
        self.chunk_count = 0
        self.size = 0  # bytes kept
        self.newlines = 0  # b"\n" among them
        self.ended_line = True  # the bytes kept end with b"\n" (or there are none)
        self.dropped = 0  # bytes past MAX_OUTPUT_BYTES, not kept

    # -- writing --------------------------------------------------------------

    def append(self, data):
        """Keep `data` (bytes) after what is kept, as far as the cap allows.
        At the cap the kept bytes end at the last whole line that fits (a
        line longer than the room left is cut, with a newline added); from
        then on appended bytes are only counted."""
        if not data:
            return
        if self.dropped:
            self.dropped += len(data)
            return
        room = MAX_OUTPUT_BYTES - self.size
        if len(data) > room:
            cut = data.rfind(b"\n", 0, room) + 1 or room
            self.dropped = len(data) - cut
            data = data[:cut]
            if not (data.endswith(b"\n") or (not data and self.ended_line)):
                data += b"\n"
        for start in range(0, len(data), CHUNK_BYTES):
            self._store(data[start:start + CHUNK_BYTES])

    def _store(self, piece):
        key = self.chunk_count
        self.chunks[key] = OutputChunk(piece, self.newlines)
        self.line_index[self.newlines] = key
        self.chunk_count += 1
        self.size += len(piece)
        self.newlines += piece.count(b"\n")
        self.ended_line = piece.endswith(b"\n")

    # -- reading --------------------------------------------------------------

    @property
    def kept_lines(self):
        return self.newlines + (0 if self.ended_line else 1)

    @property
    def line_count(self):
        """Lines of the output, the note on what was dropped included."""
        return self.kept_lines + (1 if self.dropped else 0)

    def note(self):
        return (f"[provisioner: {self.dropped} more bytes of output were dropped; a run keeps at most "
                f"{MAX_OUTPUT_BYTES // MiB} MiB]\n").encode()

    def lines(self, start=0, end=None):
        """The lines start..end-1 (end None: to the last), as bytes with
        their newlines; the note on what was dropped is the last line."""
        kept = self.kept_lines
        stop = kept if end is None else min(end, kept)
        if start < stop:
            yield from self._kept(start, stop)
        if self.dropped and start <= kept and (end is None or kept < end):
            yield self.note()

    def _kept(self, start, stop):
        # The chunk to read from: the last one starting in a line before
        # `start` (line `start` begins in it, or in a later one).
        key = line = 0
        if start:
            try:
                line = self.line_index.maxKey(start - 1)
            except ValueError:
                line = 0
            else:
                key = self.line_index[line]
        partial = []  # the line being read, when it spans chunks
        for chunk in self.chunks.values(min=key):
            data, position = chunk.data, 0
            while True:
                newline = data.find(b"\n", position)
                if newline < 0:
                    break
                if line >= start:
                    partial.append(data[position:newline + 1])
                    yield b"".join(partial)
                    partial = []
                line += 1
                position = newline + 1
                if line >= stop:
                    return
            if line >= start and position < len(data):
                partial.append(data[position:])
        if partial:
            yield b"".join(partial)  # the last line, unfinished

    def bytes_from(self, chunk):
        """The bytes of the chunks from number `chunk` on, and the number of
        the next chunk to come: what a follower has not read yet."""
        count = self.chunk_count
        return b"".join(self.chunks[key].data for key in range(chunk, count)), count

    def text(self, start=0, end=None):
        """The lines start..end-1 as text: UTF-8 (what does not decode is
        replaced), CRLF (ansible-runner's terminal line ends) as LF."""
        return b"".join(self.lines(start, end)).decode("utf-8", errors="replace").replace("\r\n", "\n")
