"""E2AP RIC indications (`indications.encoding: e2ap`): the APER-encoded E2AP PDUs an E2 node sends
a RIC after a subscription, carrying the E2SM-WMFM-CSI service model (proto/e2sm_wmfm_csi.asn).

    E2AP-PDU initiatingMessage, procedure RICindication (5), IEs:
      RICrequestID (29), RANfunctionID (5), RICactionID (15), RICindicationSN (27),
      RICindicationType (28), RICindicationHeader (25), RICindicationMessage (26)
    RICindicationHeader  = E2SM-WMFM-CSI-IndicationHeader  (time, E2 node name, NR CGI, SM name/version)
    RICindicationMessage = E2SM-WMFM-CSI-IndicationMessage (per-UE CSI tensors)

Decoded with pycrate (its compiled E2AP module, and ours generated from the .asn by `make proto`)
into the same Indication record as the protobuf envelope, with the same checks and DecodeError
reasons (codec.py), plus `procedure` (an E2AP PDU that is not a RIC indication).

pycrate keeps its codec state in class attributes shared by every module: all encoding and
decoding here goes through one lock. Two of its limits are set on purpose: the largest item
it decodes (1 MiB by default; an indication message can be larger), and a fix of its APER
decoder (0.8.1) that mis-advances the alignment after the last fragment of an octet string of
16 KiB or more (a large RICindicationMessage followed by another IE, a large CSI tensor
followed by the next UE: wrong values or an error); tests/xapp/test_e2ap.py holds both.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from .codec import _NAME, _PLMN, SM_NAME, SM_VERSION, DecodeError, Limits, _range, _time, csi_reports
from .records import Indication

PROCEDURE_RIC_INDICATION = 5
IE = {"RICrequestID": 29, "RANfunctionID": 5, "RICactionID": 15, "RICindicationSN": 27, "RICindicationType": 28,
      "RICindicationHeader": 25, "RICindicationMessage": 26, "RICcallProcessID": 20}
OID = "1.3.6.1.4.1.32473.1.2.1.1"           # E2SM-WMFM-CSI version 1 (proto/e2sm_wmfm_csi.asn)
MAX_ITEM_BYTES = 256 << 20                  # the largest octet string pycrate decodes (its default: 1 MiB)
_DTYPES = {"complex64": np.dtype("<f4"), "complex32": np.dtype("<f2")}
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def modules():
    """(E2AP-PDU, E2SM indication header, E2SM indication message, the E2SM module): imported once,
    on first use (pycrate's E2AP module takes ~0.1 s and ~10 MiB), with the decoder fix applied."""
    from pycrate_asn1dir import E2AP
    from pycrate_asn1rt.codecs import ASN1CodecPER
    from wmfm.proto import e2sm_wmfm_csi as sm
    _fix_fragments(ASN1CodecPER)
    ASN1CodecPER.DEC_MAXL = MAX_ITEM_BYTES
    ies = sm.E2SM_WMFM_CSI_IEs
    return E2AP.E2AP_PDU_Descriptions.E2AP_PDU, ies.E2SM_WMFM_CSI_IndicationHeader, \
        ies.E2SM_WMFM_CSI_IndicationMessage, ies


def _fix_fragments(codec) -> None:
    """pycrate 0.8.1 `decode_fragbytes` advances the aligned-PER bit offset by the last fragment's
    length in bytes instead of bits; the same function with the offset in bits."""
    if getattr(codec, "_wmfm_fragments_fixed", False):
        return

    def decode_fragbytes(cla, char, ldet, bits=False):
        unit = 1 if bits else 8
        parts, total = [], 0
        while True:
            parts.append(char.get_bytes(unit * ldet))
            if cla.ALIGNED:
                cla._off[-1] += unit * ldet
            total += ldet
            if ldet not in (65536, 49152, 32768, 16384):        # the last fragment
                return b"".join(parts), total
            ldet = cla.decode_count(char)
            if total + ldet > cla.DEC_MAXL:
                from pycrate_asn1rt.err import ASN1PERDecodeErr
                raise ASN1PERDecodeErr(f"too many fragments, {total + ldet!r}")

    codec._wmfm_original_fragbytes = codec.decode_fragbytes       # kept for the test that shows the fix matters
    codec.decode_fragbytes = classmethod(decode_fragbytes)
    codec._wmfm_fragments_fixed = True


def _aper(obj, value=None, buf: bytes | None = None):
    """Encode `value` with `obj` (-> bytes), or decode `buf` (-> the value), under the lock; a failed
    decode leaves pycrate's offset stack clean."""
    with _LOCK:
        if buf is None:
            return obj.to_aper(value)
        try:
            obj.from_aper(buf)
            return obj.get_val()
        except BaseException:
            from pycrate_asn1rt.codecs import ASN1CodecPER
            ASN1CodecPER._off.clear()
            raise


# --- decoding ----------------------------------------------------------------------------
def decode_e2ap_indication(buf: bytes, lim: Limits, received_ns: int) -> Indication:
    """An APER E2AP RICindication PDU -> Indication with one CSIReport per UE, or DecodeError."""
    if len(buf) > lim.max_message_bytes:
        raise DecodeError("oversize", f"indication of {len(buf)} bytes > {lim.max_message_bytes}")
    pdu, header, message, _ = modules()
    try:
        kind, body = _aper(pdu, buf=buf)
    except Exception as exc:  # noqa: BLE001 - pycrate raises many types on bad input
        raise DecodeError("parse", f"E2AP-PDU: {type(exc).__name__}: {str(exc)[:200]}") from None
    ies = _indication_ies(kind, body)
    for name in ("RICrequestID", "RANfunctionID", "RICactionID", "RICindicationSN", "RICindicationType",
                 "RICindicationHeader", "RICindicationMessage"):
        _range(IE[name] in ies, f"{name} missing")
    _range(1 <= len(ies[IE["RICindicationHeader"]]) <= 4096,
           f"header of {len(ies[IE['RICindicationHeader']])} bytes (1..4096)")
    try:
        h = _aper(header, buf=ies[IE["RICindicationHeader"]])
    except Exception as exc:  # noqa: BLE001
        raise DecodeError("parse", f"E2SM-WMFM-CSI-IndicationHeader: {type(exc).__name__}: {str(exc)[:200]}") \
            from None
    if (h["smName"], h["smVersion"]) != (SM_NAME, SM_VERSION):
        raise DecodeError("sm_version", f"service model {h['smName'][:40]!r} {h['smVersion'][:20]!r} "
                                        f"(this decoder knows {SM_NAME} {SM_VERSION})")
    ran_name = h["senderName"]
    _range(bool(_NAME.fullmatch(ran_name)), f"senderName {ran_name[:40]!r} (1..150 of [A-Za-z0-9._:-])")
    plmn, cell_id = plmn_text(h["cellGlobalId"]["pLMNIdentity"]), h["cellGlobalId"]["nRCellIdentity"][0]
    _range(bool(_PLMN.fullmatch(plmn)), f"pLMNIdentity {h['cellGlobalId']['pLMNIdentity'].hex()} (TBCD MCC+MNC)")
    t_ns = h["collectionTimeNs"]
    _time(t_ns, received_ns, lim, "collectionTimeNs")
    try:
        body = _aper(message, buf=ies[IE["RICindicationMessage"]])
    except Exception as exc:  # noqa: BLE001
        raise DecodeError("parse", f"E2SM-WMFM-CSI-IndicationMessage: {type(exc).__name__}: {str(exc)[:200]}") \
            from None
    _range(len(body["reports"]) <= lim.max_reports, f"{len(body['reports'])} reports (1..{lim.max_reports})")
    sn, cell = ies[IE["RICindicationSN"]], f"{plmn}:{cell_id}"
    ues = ((r["ueId"], (r["shape"]["ueAnt"], r["shape"]["bsAnt"], r["shape"]["subcarriers"]), _DTYPES.get(r["dtype"]),
            r["dtype"], r["data"], math.ldexp(1.0, r.get("scaleExponent", 0)),
            r["snrCentiDb"] / 100 if "snrCentiDb" in r else None) for r in body["reports"])
    request = ies[IE["RICrequestID"]]
    return Indication(ran_name, ies[IE["RANfunctionID"]], ies[IE["RICactionID"]], request["ricRequestorID"],
                      request["ricInstanceID"], sn, cell, t_ns,
                      csi_reports(ran_name, cell, sn, t_ns, ues, lim, received_ns, "ueId"), received_ns,
                      f"{SM_NAME}/{SM_VERSION}")


def _indication_ies(kind, body) -> dict:
    """A decoded E2AP-PDU -> {IE id: value} of its RIC indication, or DecodeError ("procedure": another
    PDU; "parse": an extension this E2AP version does not know, which pycrate leaves as bytes)."""
    code = body.get("procedureCode") if isinstance(body, dict) else None
    if kind != "initiatingMessage" or code != PROCEDURE_RIC_INDICATION:
        raise DecodeError("procedure", f"E2AP {kind} of procedure {code} (a RIC indication: initiatingMessage, "
                                       f"procedure {PROCEDURE_RIC_INDICATION})")
    value = body.get("value")
    if not (isinstance(value, tuple) and value[0] == "RICindication" and isinstance(value[1], dict)):
        raise DecodeError("parse", "RICindication: an unknown extension or value")
    ies = {}
    for ie in value[1].get("protocolIEs", ()):
        v = ie.get("value")
        if isinstance(v, tuple) and len(v) == 2:         # an IE this E2AP version does not know: ignored
            ies[ie["id"]] = v[1]
    return ies


def plmn_text(tbcd: bytes) -> str:
    """3 TBCD octets (3GPP TS 24.008: MCC2 MCC1, MNC3 MCC3, MNC2 MNC1; MNC3 = F for a 2-digit MNC) ->
    "MCCMNC" ("00101"); a non-digit nibble gives "?" (refused by the caller)."""
    d = [tbcd[0] & 15, tbcd[0] >> 4, tbcd[1] & 15, tbcd[2] & 15, tbcd[2] >> 4, tbcd[1] >> 4]
    digits = d[:5] + ([] if d[5] == 15 else [d[5]])
    return "".join(str(x) if x < 10 else "?" for x in digits)


def plmn_tbcd(plmn: str) -> bytes:
    """"00101" (MCC + 2- or 3-digit MNC) -> 3 TBCD octets."""
    d = [int(c) for c in plmn] + ([15] if len(plmn) == 5 else [])
    return bytes([d[1] << 4 | d[0], d[5] << 4 | d[2], d[4] << 4 | d[3]])


# --- encoding (replay simulator, load generator, tests) ------------------------------------
def encode_e2ap_indication(ran_name: str, sn: int, t_ns: int, reports: list[tuple[int, np.ndarray]],
                           ue_ant: int = 1, ran_function_id: int = 2, ric_action_id: int = 1, plmn_id: str = "00101",
                           nr_cell_id: int = 1, dtype: str = "complex64", snr_db: float | None = None,
                           requestor_id: int = 1, instance_id: int = 1) -> bytes:
    """As codec.encode_indication (same arguments), as an APER E2AP RICindication PDU. COMPLEX32 data
    is sent scaled by the power of two at or above its largest magnitude."""
    pdu, header, message, _ = modules()
    out = []
    for ue_id, csi in reports:
        csi = np.asarray(csi)
        a, k = csi.shape[1:]
        r = {"ueId": ue_id, "shape": {"ueAnt": ue_ant, "bsAnt": a // ue_ant, "subcarriers": k}, "dtype": dtype}
        peak = float(np.abs(csi).max()) if dtype == "complex32" else 0.0
        exp = math.frexp(peak)[1] if np.isfinite(peak) and peak > 0 else 0
        r["data"] = np.ascontiguousarray(np.ldexp(csi.transpose(1, 2, 0), -exp), dtype=_DTYPES[dtype]).tobytes()
        if exp:
            r["scaleExponent"] = exp
        if snr_db is not None:
            r["snrCentiDb"] = round(snr_db * 100)
        out.append(r)
    hdr = _aper(header, {"collectionTimeNs": t_ns, "senderName": ran_name, "smName": SM_NAME, "smVersion": SM_VERSION,
                         "cellGlobalId": {"pLMNIdentity": plmn_tbcd(plmn_id), "nRCellIdentity": (nr_cell_id, 36)}})
    msg = _aper(message, {"reports": out})

    def ie(name, value):                        # each IE's value type is named as the IE
        return {"id": IE[name], "criticality": "reject", "value": (name, value)}
    ies = [ie("RICrequestID", {"ricRequestorID": requestor_id, "ricInstanceID": instance_id}),
           ie("RANfunctionID", ran_function_id), ie("RICactionID", ric_action_id), ie("RICindicationSN", sn % 65536),
           ie("RICindicationType", "report"), ie("RICindicationHeader", hdr), ie("RICindicationMessage", msg)]
    return _aper(pdu, ("initiatingMessage", {"procedureCode": PROCEDURE_RIC_INDICATION, "criticality": "ignore",
                                             "value": ("RICindication", {"protocolIEs": ies})}))


def encode_sm(name: str, value) -> bytes:
    """An E2SM-WMFM-CSI value by its type name ("E2SM-WMFM-CSI-EventTriggerDefinition", ...) -> APER."""
    return _aper(getattr(modules()[3], name.replace("-", "_")), value)


def decode_sm(name: str, buf: bytes):
    """APER -> an E2SM-WMFM-CSI value of the type named."""
    return _aper(getattr(modules()[3], name.replace("-", "_")), buf=buf)


def warmup(lim: Limits) -> None:
    """Import pycrate's modules and decode one PDU at start-up, not on the first indication."""
    now = 1 << 60
    decode_e2ap_indication(encode_e2ap_indication("warmup", 0, now, [(1, np.zeros((2, lim.n_ant, lim.n_sc)))]),
                           lim, now)
