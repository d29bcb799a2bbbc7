"""No client input produces a 500; the API documents itself."""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.images import png

_DATA_URL = "data:image/png;base64," + base64.b64encode(png()).decode()
_FIELDS = ["model", "prompt", "n", "size", "quality", "background", "output_format", "output_compression",
           "response_format", "stream", "seed", "user", "image_urls", "images", "mask", "partial_images"]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["url", "b64_json", "png", "jpeg", "webp", "auto", "1024x1024", "grayscale", _DATA_URL,
                     "retouch/basic", "transparent", "http://127.0.0.1/x.png"]),
    st.lists(st.sampled_from([_DATA_URL, "x", 3, {"image_url": _DATA_URL}, {"file_id": "f"}]), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=8))
def test_random_json_bodies_never_500(client, body):
    # json.dumps writes NaN/Infinity as JavaScript does; some clients send them.
    response = client.post("/v1/images/edits", content=json.dumps(body),
                           headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(_FIELDS + ["image_urls[]", "extra[key]"]),
                              st.text(max_size=20), max_size=6),
       upload=st.sampled_from([b"", b"GIF89a", png(), png()[:100]]))
def test_random_multipart_never_500(client, fields, upload):
    response = client.post("/v1/images/edits", data=fields, files={"image": ("x.png", upload, "image/png")})
    assert response.status_code < 500, response.text


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/images/edits" in spec["paths"] and "/v1/models" in spec["paths"]
    assert client.get("/docs").status_code == 200
