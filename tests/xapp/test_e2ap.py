"""E2AP RIC indications and the E2SM-WMFM-CSI service model: golden APER vectors (tests/xapp/golden/,
checked against a second, independent APER codec: asn1tools), the generated module current, the
decoder's checks and pycrate's fragment fix, and an xApp fed E2AP answering as with protobuf."""

import threading
import time
from pathlib import Path

import asn1tools
import numpy as np
import pytest
import redis
from conftest import Sender, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from wmfm.xapp import codec, e2ap
from wmfm.xapp.codec import DecodeError, Limits

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
ASN = ROOT / "proto" / "e2sm_wmfm_csi.asn"
LIM = Limits(n_ant=2, n_sc=4, image_size=(64, 64))      # the golden CSI: 1 x 2 antennas, 4 subcarriers
T = 1_700_000_000_000_000_000
CSI = [np.arange(16, dtype=np.float32).reshape(2, 2, 4) / 8 - 1, np.full((2, 2, 4), 0.5, np.float32)]


def _bits(value: int, n: int) -> tuple[bytes, int]:
    """A BIT STRING as asn1tools holds it: left-aligned bytes and the bit count."""
    return (value << (-n % 8)).to_bytes((n + 7) // 8, "big"), n


# type name -> (the value as pycrate takes it, the same value as asn1tools takes it)
VALUES = {
    "E2SM-WMFM-CSI-RANFunctionDefinition": (
        {"ranFunction-Name": {"ranFunction-ShortName": "WMFM-CSI", "ranFunction-E2SM-OID": e2ap.OID,
                              "ranFunction-Description": "Per-UE CSI reports for the WMFM xApp"},
         "reportStyles": [{"shape": {"ueAnt": 1, "bsAnt": 32, "subcarriers": 64}, "dtypes": ["complex64", "complex32"],
                           "minReportingPeriodMs": 10, "maxUEsPerReport": 256}]}, None),
    "E2SM-WMFM-CSI-EventTriggerDefinition": ({"reportingPeriodMs": 100}, None),
    "E2SM-WMFM-CSI-ActionDefinition": ({"dtype": "complex32", "maxUEsPerReport": 64, "ueFilter": [7, 1099511627775]},
                                       None),
    "E2SM-WMFM-CSI-IndicationHeader": (
        {"collectionTimeNs": T, "senderName": "gnb_1", "smName": "WMFM-CSI", "smVersion": "1.0",
         "cellGlobalId": {"pLMNIdentity": bytes.fromhex("00f110"), "nRCellIdentity": (1, 36)}},
        {"collectionTimeNs": T, "senderName": "gnb_1", "smName": "WMFM-CSI", "smVersion": "1.0",
         "cellGlobalId": {"pLMNIdentity": bytes.fromhex("00f110"), "nRCellIdentity": _bits(1, 36)}}),
    "E2SM-WMFM-CSI-IndicationMessage": (
        {"reports": [{"ueId": 10, "shape": {"ueAnt": 1, "bsAnt": 2, "subcarriers": 4}, "dtype": "complex64",
                      "data": CSI[0].transpose(1, 2, 0).astype("<f4").tobytes(), "snrCentiDb": -1250},
                     {"ueId": 1099511627775, "shape": {"ueAnt": 1, "bsAnt": 2, "subcarriers": 4}, "dtype": "complex32",
                      "data": (CSI[1] / 2).transpose(1, 2, 0).astype("<f2").tobytes(), "scaleExponent": 1}]}, None),
}


@pytest.fixture(scope="module")
def independent():
    return asn1tools.compile_files(str(ASN), "per")


@pytest.mark.parametrize("name", list(VALUES))
def test_the_service_model_encodes_to_the_golden_vectors_as_an_independent_codec_does(name, independent):
    value, theirs = VALUES[name]
    golden = (GOLDEN / f"{name}.aper").read_bytes()
    assert e2ap.encode_sm(name, value) == golden
    assert independent.encode(name, theirs or value, check_constraints=True) == golden
    assert e2ap.decode_sm(name, golden) == value
    assert independent.decode(name, golden) == (theirs or value)


def test_the_generated_module_is_current(tmp_path):
    from pycrate_asn1c.asnproc import GLOBAL, PycrateGenerator, compile_text, generate_modules
    GLOBAL.clear()
    compile_text(ASN.read_text())
    generate_modules(PycrateGenerator, str(tmp_path / "e2sm.py"))
    GLOBAL.clear()
    assert (tmp_path / "e2sm.py").read_text() == (ROOT / "proto" / "e2sm_wmfm_csi.py").read_text(), "run `make proto`"


def golden_indication() -> bytes:
    return e2ap.encode_e2ap_indication("gnb_1", 7, T, [(10, CSI[0]), (11, CSI[1])], plmn_id="310410",
                                       nr_cell_id=68719476735, snr_db=20.5, requestor_id=1001, instance_id=3,
                                       ran_function_id=2, ric_action_id=1)


def test_an_e2ap_indication_decodes_from_its_golden_bytes():
    golden = (GOLDEN / "ric_indication.aper").read_bytes()
    assert golden_indication() == golden
    ind = e2ap.decode_e2ap_indication(golden, LIM, T)
    assert (ind.ran_name, ind.ran_function_id, ind.ric_action_id, ind.requestor_id, ind.instance_id, ind.sn,
            ind.cell, ind.t_ns, ind.sm) == ("gnb_1", 2, 1, 1001, 3, 7, "310410:68719476735", T, "WMFM-CSI/1.0")
    assert [r.ue_id for r in ind.reports] == [10, 11] and ind.reports[0].snr_db == 20.5
    for r, want in zip(ind.reports, CSI):
        np.testing.assert_array_equal(r.csi, want)
    # what the protobuf envelope carries decodes to the same record
    pb = codec.decode_indication(codec.encode_indication("gnb_1", 7, T, [(10, CSI[0]), (11, CSI[1])], plmn_id="310410",
                                                         nr_cell_id=68719476735, snr_db=20.5, requestor_id=1001,
                                                         instance_id=3), LIM, T)
    assert (pb.ran_name, pb.cell, pb.sn, pb.stream) == (ind.ran_name, ind.cell, ind.sn, ind.stream)


@pytest.mark.parametrize("plmn", ["00101", "310410", "99999", "123456"])
def test_plmn_identities_round_trip_through_tbcd(plmn):
    assert e2ap.plmn_text(e2ap.plmn_tbcd(plmn)) == plmn


def _pdu(**change) -> bytes:
    """The golden indication's IEs, some changed (None: left out), re-encoded."""
    pdu = e2ap.modules()[0]
    kind, body = e2ap._aper(pdu, buf=golden_indication())
    ies = [ie for ie in body["value"][1]["protocolIEs"]]
    by_name = {v: k for k, v in e2ap.IE.items()}
    out = []
    for ie in ies:
        name = by_name[ie["id"]]
        if name in change:
            if change[name] is None:
                continue
            ie = {**ie, "value": (ie["value"][0], change[name])}
        out.append(ie)
    body["value"] = ("RICindication", {"protocolIEs": out})
    return e2ap._aper(pdu, (kind, body))


def _header(**change) -> bytes:
    v = dict(VALUES["E2SM-WMFM-CSI-IndicationHeader"][0], **change)
    return e2ap.encode_sm("E2SM-WMFM-CSI-IndicationHeader", v)


@pytest.mark.parametrize("buf, reason, detail", [
    (lambda: golden_indication()[:40], "parse", "E2AP-PDU"),
    (lambda: bytes.fromhex("00024009000001003100020001"), "procedure", "procedure 2"),     # an ErrorIndication
    (lambda: _pdu(RICindicationSN=None), "range", "RICindicationSN missing"),
    (lambda: _pdu(RICindicationHeader=_header(smVersion="2.0")), "sm_version", "'2.0'"),
    (lambda: _pdu(RICindicationHeader=_header(senderName="gnb 1")), "range", "senderName"),
    (lambda: _pdu(RICindicationHeader=_header(cellGlobalId={"pLMNIdentity": b"\xab\xf1\x10",
                                                            "nRCellIdentity": (1, 36)})), "range", "pLMNIdentity"),
    (lambda: _pdu(RICindicationHeader=_header(collectionTimeNs=T + 7200 * 10**9)), "range", "from this host's clock"),
    (lambda: _pdu(RICindicationHeader=b"\x00"), "parse", "IndicationHeader"),
    (lambda: _pdu(RICindicationMessage=b"\xff" * 9), "parse", "IndicationMessage"),
    (lambda: e2ap.encode_e2ap_indication("gnb_1", 7, T, [(10, CSI[0]), (10, CSI[1])]), "range", "ueId 10 twice"),
    (lambda: e2ap.encode_e2ap_indication("gnb_1", 7, T, [(10, np.zeros((2, 2, 5)))]), "shape", "subcarriers"),
    (lambda: e2ap.encode_e2ap_indication("gnb_1", 7, T, [(10, np.full((2, 2, 4), np.nan))]), "nonfinite", "NaN"),
    (lambda: golden_indication() + b"\x00" * (5 << 20), "oversize", "> 4194304"),
], ids=["truncated", "not an indication", "no SN", "SM version", "sender name", "PLMN", "clock", "header junk",
        "message junk", "UE twice", "shape", "NaN", "oversize"])
def test_a_bad_pdu_is_refused_with_a_counted_reason(buf, reason, detail):
    with pytest.raises(DecodeError) as err:
        e2ap.decode_e2ap_indication(buf(), LIM, T)
    assert err.value.reason == reason and detail in err.value.detail, err.value


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupt_pdus_only_ever_give_a_decode_error(data):
    buf = bytearray(golden_indication())
    for _ in range(data.draw(st.integers(1, 8))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(buf)))
    try:
        ind = e2ap.decode_e2ap_indication(bytes(buf[:cut]), LIM, T)
    except DecodeError:
        return
    assert all(r.csi.shape == (2, 2, 4) and np.isfinite(r.csi).all() for r in ind.reports)


def _large_with_a_call_process_id() -> tuple[bytes, list]:
    """A message of 20001+ bytes (fragments: 16384, then a last one that is not a multiple of 8) followed
    by another IE (RICcallProcessID), with CSI large enough that a tensor spans fragments too."""
    lim = Limits(n_ant=1, n_sc=1251, image_size=(64, 64))
    csi = [np.random.default_rng(u).standard_normal((2, 1, 1251)).astype(np.float32) for u in range(2)]
    pdu = e2ap.modules()[0]
    kind, body = e2ap._aper(pdu, buf=e2ap.encode_e2ap_indication("gnb_1", 7, T, list(enumerate(csi))))
    body["value"][1]["protocolIEs"].append({"id": e2ap.IE["RICcallProcessID"], "criticality": "reject",
                                            "value": ("RICcallProcessID", b"\x01\x02\x03")})
    return e2ap._aper(pdu, (kind, body)), csi, lim


def test_pycrates_fragment_decoding_is_fixed():
    buf, csi, lim = _large_with_a_call_process_id()
    ind = e2ap.decode_e2ap_indication(buf, lim, T)
    for r, want in zip(ind.reports, csi):
        np.testing.assert_array_equal(r.csi, want)
    from pycrate_asn1rt.codecs import ASN1CodecPER  # without the fix, the same bytes do not decode right
    fixed = ASN1CodecPER.decode_fragbytes
    ASN1CodecPER.decode_fragbytes = ASN1CodecPER._wmfm_original_fragbytes
    try:
        ind = e2ap.decode_e2ap_indication(buf, lim, T)
        assert not all(np.array_equal(r.csi, w) for r, w in zip(ind.reports, csi))
    except DecodeError:
        pass
    finally:
        ASN1CodecPER.decode_fragbytes = fixed


def test_threads_decoding_at_once_get_their_own_values():
    bufs = [e2ap.encode_e2ap_indication("gnb_1", k, T, [(k, CSI[0] * k)]) for k in range(4)]
    errors = []

    def work(k):
        for _ in range(100):
            ind = e2ap.decode_e2ap_indication(bufs[k], LIM, T)
            if ind.sn != k or not np.array_equal(ind.reports[0].csi, CSI[0] * k):
                errors.append(k)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_an_xapp_fed_e2ap_answers_as_one_fed_protobuf(run_xapp, samples):
    apps = {enc: run_xapp(f"indications.encoding={enc}", "sync.deadline_ms=20") for enc in ("protobuf", "e2ap")}
    t0 = time.time_ns() + 100_000_000
    senders = {enc: Sender(app, encoding=enc) for enc, app in apps.items()}
    for tx in senders.values():
        for k in range(6):
            t = t0 + k * 20_000_000
            assert tx.frame("cam0", k, t, samples["images"][k])
            assert tx.indication(k, t + 2_000_000, [(10 + u, samples["csi"][2 * k + u]) for u in range(2)])
    got = {}
    for enc, app in apps.items():
        r = redis.Redis.from_url(app.redis_url)
        assert wait_for(lambda r=r: r.xlen("{wmfm},insights") == 12)
        got[enc] = sorted((int(f[b"sn"]), int(f[b"ue"]), f[b"p_los"], f[b"x"], f[b"y"], f[b"mode"])
                          for _, f in r.xrange("{wmfm},insights"))
        reg = app.metrics.registry
        assert reg.get_sample_value("wmfm_indications_total", {"encoding": enc, "sm": "WMFM-CSI/1.0"}) == 6
        senders[enc].close()
    assert got["e2ap"] == got["protobuf"]
