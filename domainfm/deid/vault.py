"""An encrypted, embedded store of what de-identification replaced (one SQLite file, no server).

The vault keeps, for authorised re-identification and cross-run consistency:

* ``mapping``: per patient scope and PHI kind, original value -> surrogate. Rows are found by
  HMAC (``key_h`` = HMAC(scope, kind, normalised original), ``rev_h`` = HMAC(scope, kind,
  normalised surrogate)); the original and the surrogate are stored only AES-GCM encrypted.
* ``shifts``: the per-patient date offset, encrypted.
* ``documents``: per de-identified document, the list of edits (output range -> original text)
  and the original offsets of annotation spans that had to be adjusted, encrypted. This makes
  :func:`reidentify` exact for every operator, ``redact`` and ``tag`` included.

Keys: one secret (``DOMAINFM_VAULT_KEY``, >= 32 characters) is stretched with HKDF-SHA256 and a
random per-file salt into two independent subkeys, one for HMAC lookups and one for encryption.
Without the secret the file holds only random-looking digests and ciphertext; scope names,
labels and document ids are never stored in clear. A wrong secret is detected on open by a key
check value and reported as :class:`VaultKeyError`, never as garbage output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError, CorpusError

__all__ = ["DEFAULT_ENV", "MIN_SECRET_LENGTH", "Vault", "VaultKeyError", "reidentify", "secret_from_env"]

DEFAULT_ENV = "DOMAINFM_VAULT_KEY"
MIN_SECRET_LENGTH = 32
_FORMAT = b"domainfm-vault-1"
_KEY_HINT = ("set {env} to a secret of at least 32 characters, e.g. "
             "python -c 'import secrets; print(secrets.token_urlsafe(32))'")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mapping (
    key_h BLOB PRIMARY KEY, scope_h BLOB NOT NULL, rev_h BLOB NOT NULL,
    original BLOB NOT NULL, surrogate BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS mapping_rev ON mapping (rev_h);
CREATE INDEX IF NOT EXISTS mapping_scope ON mapping (scope_h);
CREATE TABLE IF NOT EXISTS shifts (scope_h BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS documents (doc_h BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ids (id_h BLOB PRIMARY KEY, value BLOB NOT NULL);
"""


# the columns of each table, as _SCHEMA creates them (an existing file must match to be opened)
_COLUMNS = {"meta": ["name", "value"], "mapping": ["key_h", "scope_h", "rev_h", "original", "surrogate"],
            "shifts": ["scope_h", "value"], "documents": ["doc_h", "value"], "ids": ["id_h", "value"]}

PSEUDONYM_PREFIX = "doc-"
_PSEUDONYM = re.compile(r"doc-[0-9a-f]{20}")


def is_pseudonym(record_id: str) -> bool:
    """Whether ``record_id`` has the shape of :meth:`Vault.pseudonym`'s output."""
    return bool(_PSEUDONYM.fullmatch(record_id))


class VaultKeyError(ConfigError):
    """The vault key is missing, too short, or not the one the vault was created with."""


class Vault:
    """Encrypted SQLite mapping of originals, surrogates, date shifts and per-document edits.

    Args:
        path: the SQLite file; created (mode 0600) when absent.
        key: the secret, at least 32 bytes. Use :meth:`from_env` to read it from the
            environment.
        commit_every: commit after this many writes; 0 keeps every write in one transaction until
            :meth:`commit` (a run whose output appears only complete, so that a killed or failed
            run leaves no entries for records no output holds).
        must_exist: refuse an empty file instead of making it a new vault (readers).

    Raises:
        ConfigError: the file is not a domainfm vault (another SQLite database is left unchanged).
        VaultKeyError: the key is not the one the vault was created with.

    Example:
        >>> with Vault.from_env("deid.vault") as vault:  # doctest: +SKIP
        ...     vault.put_surrogate("patient:17", "NAME_PART", "smith", "Smith", "Miller")
    """

    def __init__(self, path: str | os.PathLike, key: bytes, *, commit_every: int = 500, must_exist: bool = False):
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_SECRET_LENGTH:
            raise VaultKeyError("the vault key must be at least 32 bytes; " + _KEY_HINT.format(env=DEFAULT_ENV))
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Create the file private before SQLite writes anything into it.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        new = self.path.stat().st_size == 0
        if new and must_exist:
            raise ConfigError(f"{self.path}: not a domainfm vault (an empty file)")
        try:
            # Readers (reidentify) may meet a writer: wait for its transaction instead of failing.
            self._db = sqlite3.connect(self.path, timeout=30)
            if not new:  # another application's database must come out as it went in
                try:
                    _check_layout(self._db, self.path)
                except ConfigError:
                    self._db.close()
                    raise
            self._db.executescript(_SCHEMA)  # (tables a vault of an earlier version lacks)
            row = self._db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc):  # sqlite's words for a writer that held it past the timeout
                raise ConfigError(f"{self.path}: the vault is locked by another run (a 'domainfm deid' writing "
                                  "it?); re-run when that run has finished") from None
            raise ConfigError(f"{self.path}: not a domainfm vault (not an SQLite database)") from None
        if row is None:
            salt = secrets.token_bytes(16)
            self._db.execute("INSERT INTO meta VALUES ('salt', ?)", (salt,))
        else:
            salt = row[0]
        hmac_key, enc_key = _derive_keys(bytes(key), salt)
        self._hmac_key = hmac_key
        # record-id pseudonyms depend on the key alone, not on this file's salt: outputs written
        # with different vault files under one key still join on their ids
        self._id_key = _derive_keys(bytes(key), b"domainfm-record-ids")[0]
        self._aead = AESGCM(enc_key)
        check = self._hmac(b"key-check")
        stored = self._db.execute("SELECT value FROM meta WHERE name = 'check'").fetchone()
        if stored is None:
            self._db.execute("INSERT INTO meta VALUES ('check', ?)", (check,))
            self._db.commit()
        elif not hmac.compare_digest(stored[0], check):
            self._db.close()
            raise VaultKeyError(
                f"{self.path}: the vault key does not match the key this vault was created with "
                f"(check {DEFAULT_ENV})"
            )
        self._pending = 0
        self._commit_every = commit_every

    @classmethod
    def open_existing(cls, path: str | os.PathLike, env: str = DEFAULT_ENV) -> Vault:
        """An existing vault, for reading it back (``reidentify``, ``deid-eval --vault``, the
        privacy audit): a missing file is an error, never a new empty vault."""
        if Path(path).is_dir():
            raise CorpusError(f"{path}: is a folder, not a vault (written by 'domainfm deid --vault PATH')")
        if not Path(path).is_file():
            raise CorpusError(f"{path}: no such vault (written by 'domainfm deid --vault PATH')")
        return cls.from_env(path, env, must_exist=True)

    @classmethod
    def from_env(cls, path: str | os.PathLike, env: str = DEFAULT_ENV, **kwargs: Any) -> Vault:
        """Open ``path`` with the secret from environment variable ``env``.

        Raises:
            VaultKeyError: the variable is unset or shorter than 32 characters.
        """
        return cls(path, secret_from_env(env), **kwargs)

    # -- keyed digests and encryption -------------------------------------------------------

    def _hmac(self, *parts: bytes | str) -> bytes:
        data = b"\x1f".join(p.encode("utf-8") if isinstance(p, str) else p for p in parts)
        return hmac.new(self._hmac_key, data, hashlib.sha256).digest()

    def _encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def _decrypt(self, blob: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(bytes(blob[:12]), bytes(blob[12:]), aad)
        except (InvalidTag, ValueError, TypeError):  # a changed, cut or retyped value
            raise VaultKeyError(f"{self.path}: a vault entry failed authentication "
                                "(wrong key, or the file was modified)") from None

    # -- value mapping ------------------------------------------------------------------------

    def get_surrogate(self, scope: str, kind: str, normalized: str) -> str | None:
        """The surrogate stored for a normalised original in ``scope``, or ``None``."""
        key_h = self._hmac(b"map", scope, kind, normalized)
        row = self._db.execute("SELECT surrogate FROM mapping WHERE key_h = ?", (key_h,)).fetchone()
        return None if row is None else self._decrypt(row[0], key_h + b"s").decode("utf-8")

    def surrogate_in_use(self, scope: str, kind: str, normalized_surrogate: str) -> bool:
        """Whether some other original of ``scope`` already maps to this surrogate."""
        rev_h = self._hmac(b"rev", scope, kind, normalized_surrogate)
        return self._db.execute("SELECT 1 FROM mapping WHERE rev_h = ?", (rev_h,)).fetchone() is not None

    def put_surrogate(self, scope: str, kind: str, normalized: str, original: str, surrogate: str,
                      normalized_surrogate: str | None = None) -> None:
        """Remember ``original -> surrogate`` for ``scope`` (first writer wins)."""
        key_h = self._hmac(b"map", scope, kind, normalized)
        rev_h = self._hmac(b"rev", scope, kind, normalized_surrogate or surrogate.casefold())
        self._db.execute(
            "INSERT OR IGNORE INTO mapping VALUES (?, ?, ?, ?, ?)",
            (key_h, self._hmac(b"scope", scope), rev_h,
             self._encrypt(original.encode("utf-8"), key_h + b"o"),
             self._encrypt(surrogate.encode("utf-8"), key_h + b"s")),
        )
        self._wrote()

    def lookup_original(self, scope: str, kind: str, normalized_surrogate: str) -> str | None:
        """Reverse lookup: the original that became this surrogate in ``scope``, or ``None``."""
        rev_h = self._hmac(b"rev", scope, kind, normalized_surrogate)
        row = self._db.execute("SELECT key_h, original FROM mapping WHERE rev_h = ?", (rev_h,)).fetchone()
        return None if row is None else self._decrypt(row[1], row[0] + b"o").decode("utf-8")

    # -- date shifts ----------------------------------------------------------------------------

    def get_shift(self, scope: str) -> int | None:
        scope_h = self._hmac(b"shift", scope)
        row = self._db.execute("SELECT value FROM shifts WHERE scope_h = ?", (scope_h,)).fetchone()
        return None if row is None else int(self._decrypt(row[0], scope_h).decode("ascii"))

    def put_shift(self, scope: str, days: int) -> None:
        scope_h = self._hmac(b"shift", scope)
        self._db.execute("INSERT OR IGNORE INTO shifts VALUES (?, ?)",
                         (scope_h, self._encrypt(str(int(days)).encode("ascii"), scope_h)))
        self._wrote()

    # -- per-document edits -------------------------------------------------------------------

    def put_document(self, doc_id: str, payload: dict[str, Any]) -> None:
        """Store what re-identifying document ``doc_id`` needs (replaces an earlier run's)."""
        doc_h = self._hmac(b"doc", doc_id)
        blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?)", (doc_h, self._encrypt(blob, doc_h)))
        self._wrote()

    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        doc_h = self._hmac(b"doc", doc_id)
        row = self._db.execute("SELECT value FROM documents WHERE doc_h = ?", (doc_h,)).fetchone()
        return None if row is None else json.loads(self._decrypt(row[0], doc_h).decode("utf-8"))

    def holds_other_document(self, doc_id: str, text: str) -> bool:
        """Whether the vault already holds the edits of another document (another original text)
        under ``doc_id``: storing this one would make that one impossible to re-identify. A re-run
        of the same document may replace its entry. (Entries written before the original's digest
        was stored cannot tell and are replaced.)"""
        payload = self.get_document(doc_id)
        return payload is not None and "source_h" in payload and payload["source_h"] != self.text_digest(text)

    # -- record ids ------------------------------------------------------------------------------

    def pseudonym(self, doc_id: str) -> str:
        """A keyed pseudonym of a record id, stored with its original (``deid --pseudonymize-ids``):
        the same id always gets the same pseudonym under the same key (whatever the vault file),
        and nobody without the key can compute or invert it (record numbers are short: a plain
        hash would be reversed by trying them all)."""
        pseudonym = PSEUDONYM_PREFIX + hmac.new(self._id_key, doc_id.encode("utf-8"), hashlib.sha256).hexdigest()[:20]
        id_h = self._hmac(b"id", pseudonym)
        self._db.execute("INSERT OR IGNORE INTO ids VALUES (?, ?)", (id_h, self._encrypt(doc_id.encode("utf-8"), id_h)))
        self._wrote()
        return pseudonym

    def original_id(self, pseudonym: str) -> str | None:
        """The record id behind a pseudonym of :meth:`pseudonym`, or None."""
        id_h = self._hmac(b"id", pseudonym)
        row = self._db.execute("SELECT value FROM ids WHERE id_h = ?", (id_h,)).fetchone()
        return None if row is None else self._decrypt(row[0], id_h).decode("utf-8")

    def text_digest(self, text: str) -> str:
        """A keyed digest of a text, to check a record was not edited since de-identification."""
        return self._hmac(b"text", text).hex()

    # -- rows, for engines that de-identify in many processes ------------------------------------

    TABLES = ("mapping", "shifts", "documents", "ids")

    def header(self) -> tuple[bytes, bytes]:
        """The file's salt and key check: a staging vault opened with them (:meth:`staging`)
        derives the same subkeys, so its rows can be merged into this file as they are."""
        salt = self._db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()[0]
        check = self._db.execute("SELECT value FROM meta WHERE name = 'check'").fetchone()[0]
        return bytes(salt), bytes(check)

    @classmethod
    def staging(cls, path: str | os.PathLike, key: bytes, header: tuple[bytes, bytes], **kwargs: Any) -> Vault:
        """A new vault file at ``path`` that shares another vault's salt and key check (a
        worker's scratch vault: every row it holds is already encrypted for the target file)."""
        path = Path(path)
        if path.exists():
            raise ConfigError(f"{path}: a staging vault must be a new file")
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        with sqlite3.connect(path) as db:
            db.executescript(_SCHEMA)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("salt", header[0]), ("check", header[1])])
        return cls(path, key, **kwargs)

    def rows(self):
        """Every stored row as ``(table, columns)``: digests and ciphertext only, no clear text."""
        self.commit()
        for table in self.TABLES:
            for row in self._db.execute(f"SELECT * FROM {table}"):  # noqa: S608 (fixed table names)
                yield table, tuple(bytes(v) for v in row)

    def merge_rows(self, rows) -> int:
        """Add rows from :meth:`rows` of a staging vault with this file's header. Idempotent:
        mappings and shifts keep the first row for a key (they are pure functions of the key, so
        a retried task writes the same), a document's edits are replaced by the latest."""
        n = 0
        for table, columns in rows:
            if table not in self.TABLES:
                raise ConfigError(f"{self.path}: unknown vault table {table!r} in merged rows")
            verb = "INSERT OR REPLACE" if table == "documents" else "INSERT OR IGNORE"
            marks = ", ".join("?" * len(columns))
            self._db.execute(f"{verb} INTO {table} VALUES ({marks})", columns)  # noqa: S608
            n += 1
            self._wrote()
        self.commit()
        return n

    # -- lifecycle --------------------------------------------------------------------------

    def _wrote(self) -> None:
        self._pending += 1
        if self._commit_every and self._pending >= self._commit_every:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._pending = 0

    def close(self) -> None:
        if self._db is not None:
            self._db.commit()
            self._db.close()
            self._db = None

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, exc_type, *exc: Any) -> None:
        # leaving on an error or an interrupt: what was not committed belongs to an unfinished run
        if exc_type is not None and self._db is not None:
            self._db.rollback()
        self.close()

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r})"


def _check_layout(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a database that is not a vault before anything is written into it."""
    tables = {name: [c[1] for c in db.execute(f"PRAGMA table_info({name})")]  # noqa: S608 (names from the file)
              for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for name, columns in _COLUMNS.items():
        if name == "ids" and name not in tables:
            continue  # vaults written before --pseudonymize-ids; created on open
        if tables.get(name) != columns:
            what = "has no" if name not in tables else "has another layout of the"
            raise ConfigError(f"{path}: not a domainfm vault (it {what} {name!r} table); "
                              "choose another --vault path")
    names = {n for (n,) in db.execute("SELECT name FROM meta")}
    if not {"salt", "check"} <= names:
        raise ConfigError(f"{path}: not a domainfm vault (its salt or key check is missing)")


def secret_from_env(env: str = DEFAULT_ENV) -> bytes:
    """The secret in environment variable ``env`` as bytes.

    Raises:
        VaultKeyError: unset, blank or shorter than 32 characters (the value is never shown).
    """
    secret = os.environ.get(env)
    if secret is None or not secret.strip():
        raise VaultKeyError(f"{env} is not set; " + _KEY_HINT.format(env=env))
    if len(secret) < MIN_SECRET_LENGTH:
        raise VaultKeyError(f"{env} is too short ({len(secret)} characters); " + _KEY_HINT.format(env=env))
    return secret.encode("utf-8")


def _derive_keys(secret: bytes, salt: bytes) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_FORMAT + b"/" + info).derive(secret)

    return derive(b"hmac"), derive(b"aes-gcm")


def reidentify(records, vault: Vault):
    """Alias of :func:`domainfm.deid.transform.reidentify` (kept here beside the vault)."""
    from domainfm.deid.transform import reidentify as _reidentify

    return _reidentify(records, vault)
