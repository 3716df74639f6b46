"""RowSink: rows reach the ShardWriter on a thread of their own, so the GPU never waits for Parquet."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Any

from embedpipe.encoders.pending import PendingOutput
from embedpipe.extract.writer import ShardWriter

log = logging.getLogger(__name__)
_CLOSE = object()


class RowSink:
    """Owns the writer while open: every row, error and flush goes through one queue, in order.

    `depth` bounds the batches in flight; a full queue makes the producer wait, so host memory stays
    bounded when the disk is slower than the GPU. An exception on the thread is raised in the
    producer at its next call, and at close().
    """

    def __init__(self, writer: ShardWriter, fact_names: list[str] | None = None, depth: int = 4) -> None:
        self.writer = writer
        self.fact_names = fact_names or []
        self._facts: dict[str, dict[str, Any]] = {}  # per key, from decoding until its row is written
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.encoded = 0  # rows the model gave in this run: whether it works at all (encode_or_split)
        self.errors_by_type: Counter[str] = Counter()  # "<stage>:<error type>" of this run's error rows
        # The thread's time in the writer (rows, error rows, parts): not its wait for the GPU's results.
        self.write_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="row-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _CLOSE:
            if self._error is not None:
                continue  # drain without writing: the producer will raise
            try:
                kind, args = item
                if kind == "rows":
                    keys, pending = args
                    outputs = pending.result()
                    start = time.perf_counter()
                    self.writer.add_rows(keys, self._with_facts(keys, outputs))
                else:
                    start = time.perf_counter()
                    if kind == "block_done":
                        self.writer.maybe_flush()
                    else:
                        self.writer.add_error(*args)
                self.write_seconds += time.perf_counter() - start
            except BaseException as exc:  # handed to the producer thread
                self._error = exc

    def _with_facts(self, keys: list[str], outputs: dict[str, Any]) -> dict[str, Any]:
        if not self.fact_names:
            return outputs
        facts = [self._facts.pop(k) for k in keys]
        return outputs | {n: [f[n] for f in facts] for n in self.fact_names}

    def add_facts(self, keys: list[str], facts: list[dict[str, Any]]) -> None:
        """Facts about the sources of rows still to come (dict updates are atomic under the GIL)."""
        if self.fact_names:
            self._facts.update(zip(keys, facts, strict=True))

    def _put(self, item: Any) -> None:
        self._raise()
        self._queue.put(item)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def rows(self, keys: list[str], pending: PendingOutput) -> None:
        self._put(("rows", (keys, pending)))
        self.encoded += len(keys)

    def error(self, key: str, stage: str, error_type: str, message: str) -> None:
        # Every failed file comes here once (decode, timeout or encode): the job log names each.
        log.warning("%s: %s failed: %s: %s", key, stage, error_type, message)
        self._facts.pop(key, None)  # a file that failed at encode has no row to take its facts
        self.errors_by_type[f"{stage}:{error_type}"] += 1
        self._put(("error", (key, stage, error_type, message)))

    def block_done(self) -> None:
        """A point where a part may end (save_every / part_mb reached): the end of a model batch's block."""
        self._put(("block_done", ()))

    def close(self) -> None:
        """Write everything queued, stop the thread, raise what it raised."""
        if self._thread.is_alive():
            self._queue.put(_CLOSE)
            self._thread.join()
        self._raise()
