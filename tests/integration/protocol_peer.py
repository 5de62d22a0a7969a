#!/usr/bin/python3
"""A macc peer written from macc-protocol(7) alone.

It proves the page: everything here follows the page's text, and nothing was taken from macc's
sources. Two modes:

  protocol_peer.py selftest PAGE
      Recompute every test vector of the page (PAGE is man/macc-protocol.7) from the inputs
      the page states, with this file's own encoders, signatures, key schedule and sealing,
      and compare with the hex printed in the page.

  protocol_peer.py run --key FILE --peer-key B64 --model SPEC ... (see --help)
      Take part in a fleet as one neighbour of a macc-agentd: dial it (or accept its
      connection), run the handshake, in the clear or sealed (XChaCha20-Poly1305, or
      AES-256-GCM when both sides offer it), with the STATE digests both HELLOs' flags choose
      per direction (BLAKE2b-256 or SHA-256), optionally announcing a platform (arch, blas),
      then exchange one STATE per round, as a peer without data of its own (its gradient is
      zero), until round R, with
      raw float32 vectors or with compressed exchange (public copies, resync states). The
      run is a list of sessions (--legs), each dialed or accepted and ended at a given round,
      which exercises new sessions: fresh nonces and keys, freshness from scratch, the resend
      of the current round, and with compression the out-of-sync BYE and the resync states;
      a resync state that arrives for a round whose difference the peer already applied must
      equal the peer's decoded copy bit for bit. Everything the peer checks about what the
      agent sends (signatures, proofs, sealing, freshness, field types, vectors) makes it
      exit 1 with a message if it fails. At round R it writes a JSON summary to --status
      (with, per session, the suite and the digest of each direction it ran, and the agent's
      platform) and stays connected, answering PINGs, until SIGTERM, when it says BYE.

Needs python3-nacl (Ed25519, X25519, XChaCha20-Poly1305), python3-cryptography (AES-256-GCM)
and python3-msgpack; BLAKE2b and SHA-256 come from hashlib.
"""

import argparse
import base64
import hashlib
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time
from array import array

import cryptography.exceptions
import msgpack
import nacl.bindings as nb
import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 2
HELLO, HELLO_ACK, STATE, PING, PONG, BYE = 1, 2, 3, 4, 5, 6
HANDSHAKE_FRAME_MAX = 4096
# HELLO flags (page: HELLO flags).
F_SEAL, F_AES, F_SHA256_OK, F_SHA256 = 1, 2, 4, 8
# Suites (page: Suites) and STATE digests (page: STATE digests), by the names macc uses.
XCHACHA, GCM = 'xchacha20poly1305', 'aes256gcm'
BLAKE2B, SHA256 = 'blake2b256', 'sha256'
GCM_REKEY_BYTES_MAX = 1 << 36
PLATFORM_MAX = 31


class ProtocolError(Exception):
    pass


# ------------------------------------------------------------------------------------------
# Byte helpers (page: CONVENTIONS)
# ------------------------------------------------------------------------------------------

def u32be(v):
    return struct.pack('>I', v)


def u64be(v):
    return struct.pack('>Q', v)


def u64le(v):
    return struct.pack('<Q', v)


def blake2b(out, m=b'', key=b'', salt=b'', person=b''):
    return hashlib.blake2b(m, digest_size=out, key=key, salt=salt, person=person).digest()


def sha256(m):
    return hashlib.sha256(m).digest()


def f32(v):
    """Round a Python float to float32."""
    return struct.unpack('<f', struct.pack('<f', v))[0]


def f32le(values):
    return array('f', values).tobytes() if sys.byteorder == 'little' else \
        b''.join(struct.pack('<f', v) for v in values)


def from_f32le(b):
    a = array('f')
    a.frombytes(b)
    if sys.byteorder != 'little':
        a.byteswap()
    return a


def f32_bits(v):
    return struct.unpack('<I', struct.pack('<f', v))[0]


# ------------------------------------------------------------------------------------------
# Messages (page: FRAMING, ENCODING, MESSAGES)
# ------------------------------------------------------------------------------------------

def frame(payload):
    return u32be(len(payload)) + payload


def pack(fields):
    """One msgpack map, keys in the given order, shortest encodings, bytes as bin."""
    return msgpack.packb(fields, use_bin_type=True)


def hello_payload(key, nonce, model, n, algo, rnd, degree, name, flags, eph=None, rk=(0, 0),
                  arch='', blas=''):
    m = {'ver': VERSION, 'type': HELLO, 'key': key, 'nonce': nonce, 'model': model, 'n': n,
         'algo': algo, 'round': rnd, 'degree': degree, 'name': name, 'flags': flags}
    if flags & F_SEAL:
        m['eph'] = eph
        m['rk_bytes'] = rk[0]
        m['rk_frames'] = rk[1]
    # Platform fields: optional, sent only with a value (page: Platform fields).
    if arch:
        m['arch'] = arch
    if blas:
        m['blas'] = blas
    return pack(m)


def ack_payload(key, sig):
    return pack({'ver': VERSION, 'type': HELLO_ACK, 'key': key, 'sig': sig})


def body_bytes(rnd, n, x, mom=None, w=None, enc=0):
    m = {'round': rnd, 'n': n, 'enc': enc, 'x': x}
    if mom is not None:
        m['mom'] = mom
    if w is not None:
        m['w'] = float(w)
    return pack(m)


def state_payload(sender, sig, body):
    return pack({'ver': VERSION, 'type': STATE, 'from': sender, 'sig': sig, 'body': body})


def ping_payload(kind, seq, t):
    return pack({'ver': VERSION, 'type': kind, 'seq': seq, 'time': t})


def bye_payload(reason, text):
    return pack({'ver': VERSION, 'type': BYE, 'reason': reason, 'text': text[:255]})


def decode(payload):
    """Decode one message and check the field types of the page's tables."""
    try:
        m = msgpack.unpackb(payload, raw=False, unicode_errors='surrogateescape',
                            strict_map_key=False)
    except Exception as e:  # noqa: BLE001 - any decoding failure is one protocol error
        raise ProtocolError('malformed: %s' % e)
    if not isinstance(m, dict) or not all(isinstance(k, str) for k in m):
        raise ProtocolError('malformed: not a map with string keys')
    uint(m, 'ver', 32)
    if m['ver'] != VERSION:
        raise ProtocolError('version %d' % m['ver'])
    t = uint(m, 'type', 32)
    if t == HELLO:
        binf(m, 'key', 32)
        binf(m, 'nonce', 32)
        uint(m, 'model', 64)
        uint(m, 'n', 64)
        text(m, 'algo', 31)
        uint(m, 'round', 64)
        uint(m, 'degree', 32)
        text(m, 'name', 63)
        uint(m, 'flags', 32)
        if m['flags'] & F_SEAL:
            binf(m, 'eph', 32)
            uint(m, 'rk_bytes', 64)
            uint(m, 'rk_frames', 64)
        for k in ('arch', 'blas'):
            m[k] = platform_field(m, k)
    elif t == HELLO_ACK:
        binf(m, 'key', 32)
        binf(m, 'sig', 64)
    elif t == STATE:
        binf(m, 'from', 32)
        binf(m, 'sig', 64)
        binf(m, 'body', None)
    elif t in (PING, PONG):
        uint(m, 'seq', 64)
        uint(m, 'time', 64)
    elif t == BYE:
        if not isinstance(m.get('reason'), int) or not -2**31 <= m['reason'] < 2**31:
            raise ProtocolError('malformed: BYE reason')
        if not isinstance(m.get('text'), str):
            raise ProtocolError('malformed: BYE text')
    else:
        raise ProtocolError('malformed: unknown type %r' % t)
    return m


def uint(m, k, bits):
    v = m.get(k)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**bits:
        raise ProtocolError('malformed: %r is not a u%d' % (k, bits))
    return v


def binf(m, k, size):
    v = m.get(k)
    if not isinstance(v, bytes) or (size is not None and len(v) != size):
        raise ProtocolError('malformed: %r is not a bin of %s bytes' % (k, size))
    return v


def text(m, k, limit):
    v = m.get(k)
    if not isinstance(v, str) or '\0' in v or len(v.encode('utf-8', 'surrogateescape')) > limit:
        raise ProtocolError('malformed: %r is not a text of at most %d bytes' % (k, limit))
    return v


def platform_field(m, k):
    """An optional platform field as a receiver keeps it: '' when absent, malformed when not a
    str, else cut at the first NUL or after 31 bytes, every byte outside A-Z a-z 0-9 . _ + -
    replaced by '?' (page: Platform fields)."""
    if k not in m:
        return ''
    v = m[k]
    if not isinstance(v, str):
        raise ProtocolError('malformed: %r is not a str' % k)
    b = v.encode('utf-8', 'surrogateescape').split(b'\0')[0][:PLATFORM_MAX]
    ok = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-'
    return ''.join(chr(c) if c in ok else '?' for c in b)


def decode_body(body, n_expect):
    try:
        m = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as e:  # noqa: BLE001
        raise ProtocolError('malformed body: %s' % e)
    if not isinstance(m, dict):
        raise ProtocolError('malformed: body is not a map')
    uint(m, 'round', 64)
    n = uint(m, 'n', 30)
    enc = uint(m, 'enc', 32)
    binf(m, 'x', None)
    if 'mom' in m:
        binf(m, 'mom', None)
    if 'w' in m and not isinstance(m['w'], float):
        raise ProtocolError('malformed: w is not a float')
    if n != n_expect:
        raise ProtocolError('model_mismatch: n = %d, want %d' % (n, n_expect))
    if enc == 0:
        for k in ('x', 'mom'):
            if k in m and len(m[k]) != 4 * n:
                raise ProtocolError('malformed: %s has %d bytes for n = %d' % (k, len(m[k]), n))
    return m


# ------------------------------------------------------------------------------------------
# Signatures (page: SIGNATURES)
# ------------------------------------------------------------------------------------------

def ack_text(signer, verifier):
    """signer/verifier: dicts with key, nonce, flags, eph, rk (from their HELLOs)."""
    return (b'macc/2/hello' + signer['key'] + verifier['key'] + signer['nonce'] +
            verifier['nonce'] + u32be(signer['flags']) + u32be(verifier['flags']) +
            signer['eph'] + verifier['eph'] + u64be(signer['rk'][0]) + u64be(signer['rk'][1]) +
            u64be(verifier['rk'][0]) + u64be(verifier['rk'][1]))


def state_text(sender, receiver, sender_nonce, receiver_nonce, rnd, digest, alg=BLAKE2B):
    """The signed STATE text; its domain names the digest (page: Signed STATE text)."""
    domain = b'macc/2/stsha' if alg == SHA256 else b'macc/2/state'
    return (domain + sender + receiver + sender_nonce + receiver_nonce + bytes([3]) +
            u64be(rnd) + digest)


def body_digest(alg, body):
    return sha256(body) if alg == SHA256 else blake2b(32, body)


def direction_digest(sender_flags, receiver_flags):
    """The digest of the STATEs from a sender to a receiver (page: STATE digests)."""
    return SHA256 if sender_flags & F_SHA256 and receiver_flags & F_SHA256_OK else BLAKE2B


def session_suite(flags_a, flags_b):
    """The AEAD suite of a sealed session (page: Suites)."""
    return GCM if flags_a & flags_b & F_AES else XCHACHA


def hello_view(h):
    sealing = h['flags'] & F_SEAL
    return {'key': h['key'], 'nonce': h['nonce'], 'flags': h['flags'],
            'eph': h['eph'] if sealing else bytes(32),
            'rk': (h['rk_bytes'], h['rk_frames']) if sealing else (0, 0)}


# ------------------------------------------------------------------------------------------
# Sealing (page: SEALING)
# ------------------------------------------------------------------------------------------

def kx_keys(own_pk, own_sk, peer_pk):
    """The kx keys (ours to send, ours to receive)."""
    if own_pk == peer_pk:
        raise ProtocolError('crypto: the peer presents our ephemeral key')
    q = nb.crypto_scalarmult(own_sk, peer_pk)
    if q == bytes(32):
        raise ProtocolError('crypto: X25519 result is zero')
    client, server = sorted([own_pk, peer_pk])
    h = blake2b(64, q + client + server)
    c2s, s2c = h[32:], h[:32]
    return (c2s, s2c) if own_pk == client else (s2c, c2s)


def epoch_key(prev, e, ctx):
    return blake2b(32, b'', key=prev, salt=u64le(e) + bytes(8), person=ctx + bytes(8))


class Direction:
    """One direction of a sealed session: its suite, key, counter and rekey schedule."""

    def __init__(self, kx, rk_bytes, rk_frames, suite=XCHACHA):
        self.suite = suite
        self.key = epoch_key(kx, 0, b'maccsgcm' if suite == GCM else b'maccseal')
        self.epoch = 0
        self.counter = 0
        self.frames = 0
        self.bytes = 0
        if suite == GCM and (rk_bytes == 0 or rk_bytes > GCM_REKEY_BYTES_MAX):
            rk_bytes = GCM_REKEY_BYTES_MAX  # page: Rekeying, the cap under AES-256-GCM
        self.rk = (rk_bytes, rk_frames)

    def nonce(self):
        if self.suite == GCM:
            return bytes(4) + u64be(self.counter)
        return bytes(16) + u64be(self.counter)

    def account(self, p):
        self.counter += 1
        self.frames += 1
        self.bytes += p
        if (self.rk[1] != 0 and self.frames >= self.rk[1]) or \
                (self.rk[0] != 0 and self.bytes >= self.rk[0]):
            self.epoch += 1
            self.key = epoch_key(self.key, self.epoch, b'maccrkey')
            self.frames = 0
            self.bytes = 0

    def seal(self, payload):
        hdr = u32be(len(payload) + 16)
        if self.suite == GCM:
            ct = AESGCM(self.key).encrypt(self.nonce(), payload, hdr)
        else:
            ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(payload, hdr, self.nonce(),
                                                               self.key)
        self.account(len(payload))
        return hdr + ct

    def open(self, sealed):
        if len(sealed) < 16:
            raise ProtocolError('sealed frame shorter than its tag')
        hdr = u32be(len(sealed))
        try:
            if self.suite == GCM:
                p = AESGCM(self.key).decrypt(self.nonce(), sealed, hdr)
            else:
                p = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, hdr, self.nonce(),
                                                                  self.key)
        except (nacl.exceptions.CryptoError, cryptography.exceptions.InvalidTag):
            raise ProtocolError('sealed frame %d does not open (%s)' % (self.counter,
                                                                         self.suite))
        self.account(len(p))
        return p


def eph_from_seed(seed):
    """Test vectors only: the ephemeral key pair made from a seed, as the page says."""
    sk = blake2b(32, seed)
    return nb.crypto_scalarmult_base(sk), sk


# ------------------------------------------------------------------------------------------
# Compressed vectors, model hash (page: VECTOR ENCODINGS, MODEL HASH)
# ------------------------------------------------------------------------------------------

def blob_header(tag, n, count):
    return bytes([tag, 0, 0, 0]) + struct.pack('<II', n, count)


def bf16_encode(d):
    out = b''
    for v in d:
        if not math.isfinite(v):
            raise ValueError('not finite')
        u = f32_bits(v)
        r = ((u + 0x7fff + ((u >> 16) & 1)) & 0xffffffff) >> 16
        if (r & 0x7f80) == 0x7f80:
            raise ValueError('rounds to infinity')
        out += struct.pack('<H', r)
    return blob_header(1, len(d), len(d)) + out


def roundf(q):
    return math.copysign(math.floor(abs(q) + 0.5), q)


def int8_encode(d):
    n = len(d)
    nblocks = (n + 255) // 256
    scales, codes = b'', b''
    for b in range(nblocks):
        block = d[256 * b:256 * (b + 1)]
        m = max(abs(v) for v in block)
        s = f32(m / 127.0)
        scales += struct.pack('<f', s)
        for v in block:
            q = roundf(f32(v / s)) if s > 0 else 0.0
            q = max(-127, min(127, int(q)))
            codes += struct.pack('<b', q)
    return blob_header(2, n, nblocks) + scales + codes


def topk_encode(d, frac):
    n = len(d)
    k = int(math.floor(frac * n + 0.5))
    k = min(max(k, 1), n)
    keep = sorted(sorted(range(n), key=lambda i: (-abs(d[i]), i))[:k])
    return (blob_header(3, n, k) + b''.join(struct.pack('<I', i) for i in keep) +
            b''.join(struct.pack('<f', d[i]) for i in keep))


def blob_check(blob, tag, n):
    """Check a compressed vector of encoding `tag` for n values (page: VECTOR ENCODINGS) and
    return it as (tag, count, payload)."""
    if len(blob) < 12 or blob[0] != tag or blob[1:4] != bytes(3):
        raise ProtocolError('malformed: compressed vector header')
    bn, count = struct.unpack('<II', blob[4:12])
    want = {1: 12 + 2 * n if count == n else -1,
            2: 12 + 4 * count + n if count == (n + 255) // 256 else -1,
            3: 12 + 8 * count if count <= n else -1}[tag]
    if bn != n or len(blob) != want:
        raise ProtocolError('malformed: compressed vector of %d bytes, n %d, count %d'
                            % (len(blob), bn, count))
    pay = blob[12:]
    if tag == 1 and any((u & 0x7f80) == 0x7f80 for (u,) in struct.iter_unpack('<H', pay)):
        raise ProtocolError('malformed: bf16 value not finite')
    if tag == 2:
        scales = struct.unpack('<%df' % count, pay[:4 * count])
        if any(not (0 <= sc <= 3.4028234663852886e38 / 127) for sc in scales) or \
                0x80 in pay[4 * count:]:
            raise ProtocolError('malformed: int8 scale or code')
    if tag == 3:
        idx = struct.unpack('<%dI' % count, pay[:4 * count])
        vals = struct.unpack('<%df' % count, pay[4 * count:])
        if any(i >= n for i in idx) or any(b <= a for a, b in zip(idx, idx[1:])) or \
                not all(math.isfinite(v) for v in vals):
            raise ProtocolError('malformed: top-k index or value')
    return blob


def blob_add(acc, blob):
    """acc += the decoded vector, in float32 (page: VECTOR ENCODINGS)."""
    tag, n, count = blob[0], len(acc), struct.unpack('<I', blob[8:12])[0]
    pay = blob[12:]
    if tag == 1:
        for i, (u,) in enumerate(struct.iter_unpack('<H', pay)):
            acc[i] = f32(acc[i] + struct.unpack('<f', struct.pack('<I', u << 16))[0])
    elif tag == 2:
        scales = struct.unpack('<%df' % count, pay[:4 * count])
        codes = struct.unpack('<%db' % n, pay[4 * count:])
        for i in range(n):
            acc[i] = f32(acc[i] + f32(scales[i // 256] * codes[i]))
    else:
        idx = struct.unpack('<%dI' % count, pay[:4 * count])
        vals = struct.unpack('<%df' % count, pay[4 * count:])
        for i, v in zip(idx, vals):
            acc[i] = f32(acc[i] + v)


def compress(spec, d):
    if spec == 'bf16':
        return bf16_encode(d)
    if spec == 'int8':
        return int8_encode(d)
    return topk_encode(d, float(spec.split(':')[1]))


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def model_nparams(spec):
    base = spec.split(',')[0]
    if base == 'cnn:lenet5':
        return 61706
    if base == 'cnn:cifar':
        return 156074
    kind, _, rest = base.partition(':')
    sizes = [int(s) for s in rest.split(':')[0].split('-')]
    if kind not in ('logreg', 'mlp'):
        raise ValueError('unknown model %s' % spec)
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def model_hash(canonical_spec):
    return fnv1a64(('%s/%d' % (canonical_spec, model_nparams(canonical_spec))).encode())


# ------------------------------------------------------------------------------------------
# selftest: the page's vectors from the page's inputs
# ------------------------------------------------------------------------------------------

def page_vectors(path):
    vecs, cur = {}, None
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if cur is not None and line.strip() and all(c in '0123456789abcdef ' for c in line):
                vecs[cur[0]] += bytes.fromhex(line.replace(' ', ''))
                continue
            cur = None
            head = line.split(' (')
            if len(head) == 2 and head[1] in ('%s bytes)' % head[1].split()[0],) and \
                    head[0] and all(c.islower() or c.isdigit() or c in '._-' for c in head[0]):
                cur = (head[0], int(head[1].split()[0]))
                vecs[cur[0]] = b''
    return vecs


def example_vectors():
    x = [f32(0.5 * i - 1.0) for i in range(8)]
    v = [f32(-xi / 4) for xi in x]
    return x, v


def selftest_vectors():
    out = {}
    ska = nacl.signing.SigningKey(bytes([0x0a]) * 32)
    skb = nacl.signing.SigningKey(bytes([0x0b]) * 32)
    pa, pb = bytes(ska.verify_key), bytes(skb.verify_key)
    out['a-public-key'], out['b-public-key'] = pa, pb
    model, n, algo = 0x1234abcd5678ef01, 8, 'dmsgd'
    x, v = example_vectors()

    # In the clear.
    na = bytes(0xa0 + i for i in range(32))
    nbn = bytes(0xb0 + i for i in range(32))
    out['hello.bin'] = frame(hello_payload(pa, na, model, n, algo, 42, 2, 'agent-a', 0))
    out['hello-platform'] = frame(hello_payload(pa, na, model, n, algo, 42, 2, 'agent-a', 0,
                                                arch='x86_64', blas='Haswell'))
    ha = {'key': pa, 'nonce': na, 'flags': 0, 'eph': bytes(32), 'rk': (0, 0)}
    hb = {'key': pb, 'nonce': nbn, 'flags': 0, 'eph': bytes(32), 'rk': (0, 0)}
    out['ack-text'] = ack_text(ha, hb)
    out['hello_ack.bin'] = frame(ack_payload(pa, ska.sign(out['ack-text']).signature))
    body = body_bytes(42, n, f32le(x), f32le(v))
    out['state-digest'] = blake2b(32, body)
    out['state-text'] = state_text(pa, pb, na, nbn, 42, out['state-digest'])
    out['state.bin'] = frame(state_payload(pa, ska.sign(out['state-text']).signature, body))
    body = body_bytes(43, n, f32le(x))
    t = state_text(pa, pb, na, nbn, 43, blake2b(32, body))
    out['state_nomom.bin'] = frame(state_payload(pa, ska.sign(t).signature, body))
    # STATS (page: STANDARDISATION): A to B on the same session, step 3 of S = 50, D = 2.
    vals = [4.0, 8.0, -0.0, 20.0, 20.0, 0.1, 1e300]
    sbody = pack({'step': 3, 'avg': 50, 'exact': 2, 'n': len(vals),
                  'v': struct.pack('<%dd' % len(vals), *vals)})
    out['stats-text'] = (b'macc/2/stats' + pa + pb + na + nbn + bytes([7]) + u64be(3) +
                         blake2b(32, sbody))
    out['stats.bin'] = frame(pack({'ver': VERSION, 'type': 7, 'from': pa,
                                   'sig': ska.sign(out['stats-text']).signature,
                                   'body': sbody}))
    out['ping.bin'] = frame(ping_payload(PING, 7, 1234567890123))
    out['pong.bin'] = frame(ping_payload(PONG, 7, 1234567890123))
    out['bye.bin'] = frame(bye_payload(-1006, 'model mismatch'))

    # SHA-256 digests, in the clear: both sides with flags 12.
    na, nbn = bytes([0xa0]) * 32, bytes([0xb0]) * 32
    fl = F_SHA256_OK | F_SHA256
    out['hello_sha256.bin'] = frame(hello_payload(pa, na, model, n, algo, 0, 1, 'a', fl))
    alg = direction_digest(fl, fl)
    body = body_bytes(42, n, f32le(x), f32le(v))
    out['state-sha256-digest'] = body_digest(alg, body)
    out['state-sha256-text'] = state_text(pa, pb, na, nbn, 42, out['state-sha256-digest'], alg)
    out['state_sha256.bin'] = frame(state_payload(pa, ska.sign(out['state-sha256-text']).signature,
                                                  body))

    # Sealed.
    epa, esa = eph_from_seed(bytes([0x5a]) * 32)
    epb, esb = eph_from_seed(bytes([0x5b]) * 32)
    out['a-eph-public-key'], out['b-eph-public-key'] = epa, epb
    client, server = sorted([epa, epb])
    q = nb.crypto_scalarmult(esa, epb)
    out['kx-hash'] = blake2b(64, q + client + server)
    a_tx, a_rx = kx_keys(epa, esa, epb)
    b_tx, b_rx = kx_keys(epb, esb, epa)
    if a_tx != b_rx or a_rx != b_tx:
        raise ProtocolError('the two sides derive different keys')
    rk = (4096, 2)
    # The same session twice: flags 1 (XChaCha20-Poly1305), flags 3 (AES-256-GCM).
    for fl, suffix in ((F_SEAL, ''), (F_SEAL | F_AES, '-gcm')):
        ha = {'key': pa, 'nonce': na, 'flags': fl, 'eph': epa, 'rk': rk}
        hb = {'key': pb, 'nonce': nbn, 'flags': fl, 'eph': epb, 'rk': rk}
        suite = session_suite(ha['flags'], hb['flags'])
        fname = (lambda f: f.replace('.bin', '_gcm.bin')) if suffix else (lambda f: f)
        out[fname('hello_sealed.bin')] = frame(hello_payload(pa, na, model, n, algo, 0, 1, 'a',
                                                             fl, epa, rk))
        out['sealed%s-ack-text' % suffix] = ack_text(ha, hb)
        tx = Direction(a_tx, *rk, suite=suite)
        out['key-a-to-b-0' + suffix] = tx.key
        out['key-b-to-a-0' + suffix] = Direction(a_rx, *rk, suite=suite).key
        out[fname('sealed_ping.bin')] = tx.seal(ping_payload(PING, 9, 1009))
        tx.seal(ping_payload(PING, 10, 1010))
        out['key-a-to-b-1' + suffix] = tx.key
        body = body_bytes(42, n, f32le(x), f32le(v))
        t = state_text(pa, pb, na, nbn, 42, blake2b(32, body))
        out[fname('sealed_state.bin')] = tx.seal(state_payload(pa, ska.sign(t).signature, body))

    # Compressed vectors.
    d = [f32(1 / 3), -2.5, f32(0.1), f32(0.001), -0.75, 3.0, 0.0, f32(-1 / 3)]
    out['compress-input'] = f32le(d)
    out['bf16-blob'] = bf16_encode(d)
    out['topk-blob'] = topk_encode(d, 0.5)
    out['int8-blob'] = int8_encode([f32((i - 130) / 64) for i in range(260)])

    # Model hashes.
    out['model-hash-mlp'] = u64be(model_hash('mlp:784-256-128-10'))
    out['model-hash-lenet5'] = u64be(model_hash('cnn:lenet5,dropout=0.25'))
    return out


def selftest(page):
    want = page_vectors(page)
    have = selftest_vectors()
    bad = 0
    for name in sorted(set(want) | set(have)):
        if name not in want:
            print('selftest: %s is not in the page' % name)
            bad += 1
        elif name not in have:
            print('selftest: the page has %s, this peer does not compute it' % name)
            bad += 1
        elif want[name] != have[name]:
            k = next((i for i, (a, b) in enumerate(zip(want[name], have[name])) if a != b),
                     min(len(want[name]), len(have[name])))
            print('selftest: %s differs at byte %d (page %d bytes, peer %d)'
                  % (name, k, len(want[name]), len(have[name])))
            bad += 1
        else:
            print('selftest: %s ok (%d bytes)' % (name, len(have[name])))
    if bad:
        print('selftest: %d vector(s) of the page not reproduced' % bad)
        return 1
    print('selftest: all %d vectors of the page reproduced from its text' % len(want))
    return 0


# ------------------------------------------------------------------------------------------
# run: one neighbour of a macc-agentd
# ------------------------------------------------------------------------------------------

class Stop(Exception):
    pass


class Session:
    """One connection: framing, handshake, sealing, and the messages of a round."""

    def __init__(self, peer, sock, outbound):
        self.p = peer
        self.sock = sock
        self.outbound = outbound
        self.buf = b''
        self.nonce = os.urandom(32)
        self.hello = None          # the agent's HELLO
        self.proven = False
        self.tx = self.rx = None   # Direction objects once the keys exist
        self.tx_on = self.rx_on = False
        self.last_round = None     # freshness of the agent's STATEs on this session
        self.sent_round = None     # our last STATE round on this session
        self.sent_any = False      # a STATE went out on this session (resync rule)
        self.ping_seq = 0
        self.pongs = 0
        self.eph_pk = self.eph_sk = None
        if peer.seal:
            self.eph_sk = os.urandom(32)
            self.eph_pk = nb.crypto_scalarmult_base(self.eph_sk)
        self.suite = None                       # the AEAD suite, once the HELLOs are known
        self.tx_digest = self.rx_digest = None  # the STATE digest of each direction

    def our_view(self):
        return {'key': self.p.pub, 'nonce': self.nonce, 'flags': self.p.flags,
                'eph': self.eph_pk if self.p.seal else bytes(32),
                'rk': self.p.rk if self.p.seal else (0, 0)}

    def send(self, payload):
        data = self.tx.seal(payload) if self.tx_on else frame(payload)
        self.sock.sendall(data)

    def send_hello(self):
        v = self.our_view()
        self.send(hello_payload(self.p.pub, self.nonce, self.p.model_hash, self.p.n, self.p.algo,
                                self.p.round, self.p.degree, self.p.name, v['flags'], v['eph'],
                                v['rk'], self.p.arch, self.p.blas))

    def limit(self):
        return 1536 + 8 * self.p.n if self.proven else HANDSHAKE_FRAME_MAX

    def frames(self, timeout):
        """Yield the payloads that arrive within `timeout` seconds (opened when sealed)."""
        end = time.monotonic() + timeout
        while True:
            while len(self.buf) >= 4:
                size = struct.unpack('>I', self.buf[:4])[0]
                if size > self.limit():
                    raise ProtocolError('too_big: frame of %d bytes (limit %d)'
                                        % (size, self.limit()))
                if len(self.buf) < 4 + size:
                    break
                payload, self.buf = self.buf[4:4 + size], self.buf[4 + size:]
                yield self.rx.open(payload) if self.rx_on else payload
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return
            data = self.sock.recv(1 << 20)
            if not data:
                raise Stop('the agent closed the connection')
            self.buf += data

    def on_hello(self, h):
        p = self.p
        if self.hello is not None:
            raise ProtocolError('replay: second HELLO')
        if h['key'] != p.peer_key:
            raise ProtocolError('unknown_peer: HELLO from an unexpected key')
        if h['nonce'] == self.nonce:
            raise ProtocolError('replay: our own nonce')
        if (h['model'], h['n'], h['algo']) != (p.model_hash, p.n, p.algo):
            raise ProtocolError('model_mismatch: %x/%d/%s' % (h['model'], h['n'], h['algo']))
        if bool(h['flags'] & F_SEAL) != p.seal:
            raise ProtocolError('encrypt_mismatch')
        if h['round'] > p.rounds:
            raise ProtocolError('replay: HELLO round %d beyond %d' % (h['round'], p.rounds))
        self.hello = h
        # What this session runs follows from both HELLOs' flags (page: HELLO flags).
        self.tx_digest = direction_digest(p.flags, h['flags'])
        self.rx_digest = direction_digest(h['flags'], p.flags)
        if p.seal:
            self.suite = session_suite(p.flags, h['flags'])
            txk, rxk = kx_keys(self.eph_pk, self.eph_sk, h['eph'])
            self.tx = Direction(txk, *p.rk, suite=self.suite)
            self.rx = Direction(rxk, h['rk_bytes'], h['rk_frames'], suite=self.suite)
            self.eph_sk = None  # forward secrecy: no longer needed
        p.peer_degree = h['degree']
        p.known_round = max(p.known_round, h['round'])
        sig = p.sk.sign(ack_text(self.our_view(), hello_view(h))).signature
        self.send(ack_payload(p.pub, sig))
        self.tx_on = p.seal

    def on_ack(self, a):
        if self.hello is None:
            raise ProtocolError('state: HELLO_ACK before HELLO')
        if a['key'] != self.hello['key']:
            raise ProtocolError('unknown_peer: HELLO_ACK from another key')
        if self.proven:
            raise ProtocolError('replay: second HELLO_ACK')
        try:
            nacl.signing.VerifyKey(self.hello['key']).verify(
                ack_text(hello_view(self.hello), self.our_view()), a['sig'])
        except nacl.exceptions.BadSignatureError:
            raise ProtocolError('bad_signature: HELLO_ACK proof')
        self.proven = True
        self.rx_on = self.p.seal

    def on_state(self, m):
        p = self.p
        if not self.proven:
            raise ProtocolError('state: STATE before the handshake')
        if m['from'] != self.hello['key']:
            raise ProtocolError('unknown_peer: STATE from another key')
        body = m['body']
        b = decode_body(body, p.n)
        digest = body_digest(self.rx_digest, body)
        t = state_text(self.hello['key'], p.pub, self.hello['nonce'], self.nonce, b['round'],
                       digest, self.rx_digest)
        try:
            nacl.signing.VerifyKey(self.hello['key']).verify(t, m['sig'])
        except nacl.exceptions.BadSignatureError:
            raise ProtocolError('bad_signature: STATE of round %d' % b['round'])
        if b['round'] > p.rounds:
            raise ProtocolError('replay: STATE round %d beyond the run' % b['round'])
        if self.last_round is not None and b['round'] <= self.last_round:
            raise ProtocolError('replay: STATE round %d after %d' % (b['round'], self.last_round))
        self.last_round = b['round']
        if ('mom' in b) != (p.algo == 'dmsgd') or 'w' in b:
            raise ProtocolError('malformed: unexpected mom or w')
        if b['enc'] not in (0, p.comp_tag):
            raise ProtocolError('malformed: enc %d, we run %s' % (b['enc'], p.compress))
        if b['enc'] == 0:
            x = from_f32le(b['x'])
            mom = from_f32le(b['mom']) if 'mom' in b else None
            if not all(math.isfinite(z) for z in x) or \
                    (mom is not None and not all(math.isfinite(z) for z in mom)):
                raise ProtocolError('nonfinite: STATE of round %d' % b['round'])
        else:
            x = blob_check(b['x'], b['enc'], p.n)
            mom = blob_check(b['mom'], b['enc'], p.n) if 'mom' in b else None
        p.states_in += 1
        p.on_neighbour_state(self, b['round'], b['enc'], x, mom)

    def handle(self, payload):
        m = decode(payload)
        t = m['type']
        if t == HELLO:
            self.on_hello(m)
        elif t == HELLO_ACK:
            self.on_ack(m)
            self.ping_seq += 1
            self.send(ping_payload(PING, self.ping_seq, time.monotonic_ns()))
            self.p.on_session_up(self)
        elif t == STATE:
            self.on_state(m)
        elif t == PING:
            self.send(ping_payload(PONG, m['seq'], m['time']))
            self.p.pings_answered += 1
        elif t == PONG:
            if m['seq'] != self.ping_seq:
                raise ProtocolError('PONG for seq %d, sent %d' % (m['seq'], self.ping_seq))
            self.pongs += 1
        elif t == BYE:
            raise Stop('the agent said BYE: reason %d (%s)' % (m['reason'], m['text']))

    def bye(self, reason, why):
        try:
            self.send(bye_payload(reason, why))
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.sock.close()


class OutOfSync(Exception):
    """Our copy of the agent's public vectors missed a difference: resynchronise."""


class Peer:
    """The learning side: one neighbour, zero gradient, the algorithm's mixing step; with
    compressed exchange, the public copies of macc-algorithms(7) and the resync rules of
    macc-protocol(7)."""

    def __init__(self, a):
        self.seed = base64.b64decode(open(a.key).read().strip())
        self.sk = nacl.signing.SigningKey(self.seed)
        self.pub = bytes(self.sk.verify_key)
        self.peer_key = base64.b64decode(a.peer_key)
        self.model_hash = model_hash(a.model)
        self.n = model_nparams(a.model)
        self.algo = a.algo
        self.seal = a.seal
        # Our HELLO flags: what we do and offer (page: HELLO flags).
        self.flags = (F_SEAL | (F_AES if a.aes else 0) if a.seal else 0) | \
            (F_SHA256_OK if a.sha256_ok else 0) | (F_SHA256 if a.sha256 else 0)
        self.arch, self.blas = a.arch, a.blas
        self.rk = (a.rk_bytes, a.rk_frames)
        self.rounds = a.rounds
        self.degree = 1
        self.name = a.name
        self.beta, self.omega = a.momentum, a.omega
        self.compress = a.compress
        self.comp_tag = {'none': 0, 'bf16': 1, 'int8': 2}.get(a.compress.split(':')[0], 3)
        self.gamma = a.gossip_step if a.gossip_step > 0 else \
            (0.2 if self.comp_tag == 3 else 1.0)
        self.round = 0
        self.hold_at = None         # do not send this round's state on the current session
        self.known_round = 0
        self.peer_degree = 1
        self.x = self.v = None
        self.got = {}               # round -> (x, mom) of the neighbour (f32 runs)
        self.have = set()           # rounds whose neighbour state arrived (compressed runs)
        self.states_in = self.states_out = self.pings_answered = 0
        self.sessions = []
        # Compressed exchange: our public copies and the agent's, whether the agent's copy is
        # in sync and the round of the difference it expects next, and our round's blobs.
        self.hat = self.vhat = self.nhat = self.nvhat = None
        self.in_sync = False
        self.hat_next = 0
        self.blobs = None           # (round, x blob, v blob) prepared for our round
        self.resync_checks = 0

    def weights(self):
        w = 1.0 / (1 + max(self.degree, self.peer_degree))  # Metropolis-Hastings
        return 1.0 - w, w

    def dmsgd(self):
        return self.algo == 'dmsgd'

    def prepare(self):
        """Compressed: this round's differences, applied to our own copies as sent."""
        if self.blobs is not None and self.blobs[0] == self.round:
            return
        qx = compress(self.compress, [f32(a - b) for a, b in zip(self.x, self.hat)])
        blob_add(self.hat, qx)
        qv = None
        if self.dmsgd():
            qv = compress(self.compress, [f32(a - b) for a, b in zip(self.v, self.vhat)])
            blob_add(self.vhat, qv)
        self.blobs = (self.round, qx, qv)

    def send_state(self, s):
        if self.x is None or self.round >= self.rounds or s.sent_round == self.round or \
                self.round == self.hold_at:
            return
        enc, x, mom = 0, self.x, self.v if self.dmsgd() else None
        if self.comp_tag:
            self.prepare()
            if s.sent_any:
                enc, x, mom = self.comp_tag, self.blobs[1], self.blobs[2]
            else:
                # The first STATE on every session is a full resync state: our public copies.
                x, mom = self.hat, self.vhat if self.dmsgd() else None
        if enc == 0:
            x, mom = f32le(x), f32le(mom) if mom is not None else None
        body = body_bytes(self.round, self.n, x, mom, enc=enc)
        t = state_text(self.pub, s.hello['key'], s.nonce, s.hello['nonce'], self.round,
                       body_digest(s.tx_digest, body), s.tx_digest)
        s.send(state_payload(self.pub, self.sk.sign(t).signature, body))
        s.sent_round = self.round
        s.sent_any = True
        self.states_out += 1

    def on_session_up(self, s):
        h = s.hello
        self.sessions.append({'outbound': s.outbound, 'sealed': s.tx_on and s.rx_on,
                              'agent_round': h['round'], 'our_round': self.round,
                              'aead': s.suite, 'digest_tx': s.tx_digest,
                              'digest_rx': s.rx_digest, 'agent_flags': h['flags'],
                              'agent_arch': h['arch'], 'agent_blas': h['blas']})
        self.advance(s)

    def join(self, rnd, x, mom):
        """A peer without parameters of its own starts from the first state it receives."""
        self.x = array('f', x)
        self.v = array('f', mom) if mom is not None else array('f', bytes(4 * self.n))
        self.round = rnd
        if self.comp_tag:
            self.hat, self.vhat = array('f', self.x), array('f', self.v)

    def on_neighbour_state(self, s, rnd, enc, x, mom):
        if self.comp_tag:
            self.take_compressed(rnd, enc, x, mom)
        elif self.x is None:
            self.join(rnd, x, mom)
        if rnd > self.round:
            self.round = rnd   # the agent is ahead: join its round with our own x and v
        if rnd < self.round:
            return
        if not self.comp_tag:
            self.got[rnd] = (x, mom)
        self.have.add(rnd)
        self.advance(s)

    def take_compressed(self, rnd, enc, x, mom):
        """Keep the agent's public copies: a full state replaces them, a difference is added
        only to a copy in sync that expects this round (macc-protocol(7), Compressed
        exchange)."""
        if enc == 0:
            if self.nhat is not None and self.in_sync and self.hat_next == rnd + 1:
                # We already applied this round's difference: the resync must equal our copy.
                if self.nhat.tobytes() != array('f', x).tobytes() or \
                        (mom is not None and self.nvhat.tobytes() != array('f', mom).tobytes()):
                    raise ProtocolError('resync state of round %d differs from our copy' % rnd)
                self.resync_checks += 1
            self.nhat = array('f', x)
            self.nvhat = array('f', mom) if mom is not None else None
            self.in_sync, self.hat_next = True, rnd + 1
            if self.x is None:
                self.join(rnd, x, mom)
            return
        if not self.in_sync or self.hat_next != rnd:
            why = 'difference for round %d, copy %s, expecting round %d' % (
                rnd, 'in sync' if self.in_sync else 'out of sync', self.hat_next)
            self.in_sync = False
            raise OutOfSync(why)
        blob_add(self.nhat, x)
        if mom is not None:
            blob_add(self.nvhat, mom)
        self.hat_next = rnd + 1

    def advance(self, s):
        """Send this round's state, and update once both states of the round are known."""
        self.send_state(s)
        while self.round in self.have and s.sent_round == self.round:
            self.have.discard(self.round)
            if self.comp_tag:
                self.step_choco()
            else:
                nx, nm = self.got.pop(self.round)
                ws, wn = self.weights()
                self.step(self.x, self.v, nx, nm, ws, wn)
            self.round += 1
            self.send_state(s)

    def step(self, ox, ov, nx, nm, ws, wn):
        """One update with a zero gradient (macc-algorithms(7)): our values ox, ov mixed with
        the neighbour's nx, nm at weights ws, wn; x and v are written in place."""
        x, v = self.x, self.v
        if self.algo == 'dmsgd':
            for i in range(self.n):
                mv = ws * ov[i] + wn * nm[i]
                v[i] = self.beta * (self.omega * mv + (1 - self.omega) * v[i])
                x[i] = ws * ox[i] + wn * nx[i] + v[i]
        elif self.algo == 'cdmsgd':
            for i in range(self.n):
                v[i] = self.beta * v[i]
                x[i] = ws * ox[i] + wn * nx[i] + v[i]
        else:  # cdsgd, dsgd
            for i in range(self.n):
                x[i] = ws * ox[i] + wn * nx[i]

    def step_choco(self):
        """CHOCO: mixhat(z) = z + gamma w (zhat_agent - zhat_own), then the algorithm."""
        _, wn = self.weights()
        g = self.gamma
        mx = [a + g * wn * (b - c) for a, b, c in zip(self.x, self.nhat, self.hat)]
        mv = None
        if self.dmsgd():
            mv = [a + g * wn * (b - c) for a, b, c in zip(self.v, self.nvhat, self.vhat)]
        # mixhat in place of mix: weight 1 on the mixed values, no neighbour term.
        zeros = [0.0] * self.n
        self.step(mx, mv if mv is not None else self.v, zeros, zeros, 1.0, 0.0)


def run_session(peer, sock, outbound, stop_at, deadline):
    """One session, until the peer has reached round stop_at and has the agent's state of
    that round (its own state of stop_at goes out on the next session), or until our copy of
    the agent's public vectors is out of sync (compressed exchange: BYE state, reconnect)."""
    s = Session(peer, sock, outbound)
    peer.hold_at = stop_at if stop_at < peer.rounds else None
    s.send_hello()
    while True:
        if time.monotonic() > deadline:
            raise ProtocolError('run did not finish in time (round %d)' % peer.round)
        try:
            for payload in s.frames(0.5):
                s.handle(payload)
                if peer.round >= peer.rounds or \
                        (peer.round >= stop_at and peer.round in peer.have):
                    return s, None
        except OutOfSync as e:
            return s, e


def connect_leg(a, kind, lsock):
    """Dial the agent, or accept its dial on lsock (which is then closed, so that a later
    redial of the agent is refused rather than left waiting in the backlog)."""
    if kind == 'dial':
        sock = socket.create_connection(parse_addr(a.connect), timeout=10)
    else:
        r, _, _ = select.select([lsock], [], [], 30)
        if not r:
            raise ProtocolError('the agent did not dial back within 30 s')
        sock, _ = lsock.accept()
        lsock.close()
    sock.settimeout(None)
    return sock


def parse_addr(a):
    host, _, port = a.rpartition(':')
    return host, int(port)


def run(a):
    peer = Peer(a)
    deadline = time.monotonic() + a.timeout
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    legs = [(leg.split(':')[0], int(leg.split(':')[1]) if ':' in leg else a.rounds)
            for leg in a.legs.split(',')]
    # We listen only while we wait for the agent's dial: a connection it makes at another time
    # would wait unanswered in the backlog until its handshake deadline.
    lsock = socket.create_server(parse_addr(a.listen)) if legs[0][0] == 'listen' else None
    for i, (kind, stop) in enumerate(legs):
        s, out_of_sync = run_session(peer, connect_leg(a, kind, lsock), kind == 'dial',
                                     stop if i + 1 < len(legs) else a.rounds, deadline)
        if peer.round >= a.rounds:
            break
        if i + 1 == len(legs):
            raise ProtocolError('the sessions ended at round %d, before the end' % peer.round)
        if legs[i + 1][0] == 'listen':
            lsock = socket.create_server(parse_addr(a.listen))
        if out_of_sync is not None:
            s.bye(-1012, 'public copy out of sync: %s' % out_of_sync)
            continue
        if s.pongs == 0:
            raise ProtocolError('no PONG on session %d' % (i + 1))
        s.bye(0, 'moving to the next session')
    # Round R reached: tell the test, then stay until SIGTERM (answering PINGs).
    with open(a.status + '.tmp', 'w') as f:
        json.dump({'round': peer.round, 'states_in': peer.states_in,
                   'states_out': peer.states_out, 'pongs': s.pongs,
                   'pings_answered': peer.pings_answered, 'sessions': peer.sessions,
                   'rekeys': [s.tx.epoch, s.rx.epoch] if s.tx is not None else [0, 0],
                   'resync_checks': peer.resync_checks}, f)
    os.rename(a.status + '.tmp', a.status)
    while not stopping and time.monotonic() < deadline:
        try:
            for payload in s.frames(0.2):
                s.handle(payload)
        except Stop:
            break
    s.bye(0, 'peer stopping')
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    st = sub.add_parser('selftest')
    st.add_argument('page')
    r = sub.add_parser('run')
    r.add_argument('--key', required=True, help='secret key file (base64 Ed25519 seed)')
    r.add_argument('--peer-key', required=True, help="the agent's public key, base64")
    r.add_argument('--model', required=True, help='canonical model spec')
    r.add_argument('--algo', default='dmsgd')
    r.add_argument('--seal', action='store_true')
    r.add_argument('--aes', action='store_true',
                   help='offer AES-256-GCM (flags bit 1; with --seal)')
    r.add_argument('--sha256-ok', action='store_true',
                   help='check SHA-256 STATE digests (flags bit 2)')
    r.add_argument('--sha256', action='store_true',
                   help='digest our STATE bodies with SHA-256 (flags bit 3)')
    r.add_argument('--arch', default='', help='HELLO arch field (not sent when empty)')
    r.add_argument('--blas', default='', help='HELLO blas field (not sent when empty)')
    r.add_argument('--rk-bytes', type=int, default=1 << 30)
    r.add_argument('--rk-frames', type=int, default=1 << 20)
    r.add_argument('--rounds', type=int, required=True, help="the run's number of rounds R")
    r.add_argument('--connect', required=True, help='the agent, HOST:PORT')
    r.add_argument('--listen', help='where the agent dials us, HOST:PORT')
    r.add_argument('--legs', default='dial',
                   help='sessions in turn: dial or listen, each with :ROUND to end it at a '
                   'round (the last one runs to the end), e.g. dial:5,listen')
    r.add_argument('--compress', default='none', help='none, bf16, int8 or topk:F')
    r.add_argument('--gossip-step', type=float, default=0)
    r.add_argument('--name', default='pypeer')
    r.add_argument('--momentum', type=float, default=0.9)
    r.add_argument('--omega', type=float, default=1.0)
    r.add_argument('--status', required=True, help='JSON summary written at round R')
    r.add_argument('--timeout', type=float, default=240)
    a = ap.parse_args()
    if a.cmd == 'selftest':
        return selftest(a.page)
    try:
        return run(a)
    except (ProtocolError, Stop, OSError) as e:
        print('protocol_peer: %s' % e, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
