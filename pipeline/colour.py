"""Colour: how the input's pixels are to be read, and how the output's are written and tagged.

Networks see RGB. Turning YUV into RGB and back needs a matrix (BT.601, BT.709, BT.2020) and a
range (limited "tv" or full "pc"); a file says which in its colour tags, and when it does not,
players assume BT.709 for HD and BT.601 for SD. So we resolve the input's tags the same way,
decode with that matrix and range, encode with the same ones explicitly, and tag the output with
all four properties (matrix, primaries, transfer, range) so no player has to guess.

HDR input (PQ or HLG transfer, BT.2020 primaries, what recent phones record) is tone-mapped to
SDR BT.709 before the network sees it: the networks were trained on SDR pictures, and decoding
HDR as if it were SDR gives washed-out, grey frames. The output is then SDR BT.709.
"""

from __future__ import annotations

from dataclasses import dataclass

# libavutil's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange
# numbers (what PyAV reports) -> the names ffmpeg's options take.
MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
            8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
             9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "jedec-p22"}
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
             8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
             16: "smpte2084", 18: "arib-std-b67"}
RANGES = {1: "tv", 2: "pc"}
HDR_TRANSFERS = ("smpte2084", "arib-std-b67")  # PQ, HLG

# The scale filter's names for the YUV<->RGB matrices (several tags share coefficients).
_SCALE_MATRIX = {"bt709": "bt709", "fcc": "fcc", "bt470bg": "bt601", "smpte170m": "bt601",
                 "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}
# zscale's names, for the tone-mapping chain
_ZSCALE_MATRIX = {"bt709": "709", "bt470bg": "470bg", "smpte170m": "170m", "bt2020nc": "2020_ncl",
                  "bt2020c": "2020_cl"}
_ZSCALE_TRANSFER = {"smpte2084": "smpte2084", "arib-std-b67": "arib-std-b67"}


@dataclass(frozen=True)
class Colour:
    """A video's colour properties, every one resolved (never "unspecified")."""

    matrix: str
    primaries: str
    transfer: str
    range: str  # "tv" (limited) or "pc" (full)
    tagged: bool = True  # False when the file said nothing and these are what players assume

    @property
    def is_hdr(self) -> bool:
        return self.transfer in HDR_TRANSFERS

    def tone_mapped(self, hdr: str) -> bool:
        """Whether frames of this colour are tone-mapped to SDR under ``--hdr hdr``."""
        return self.is_hdr and hdr == "tonemap"

    def output_params(self) -> dict:
        """ffmpeg ``setparams`` options that tag frames (and so the encoded stream) with these."""
        return {"colorspace": self.matrix, "color_primaries": self.primaries,
                "color_trc": self.transfer, "range": self.range}


SDR_BT709 = Colour("bt709", "bt709", "bt709", "tv")


def resolve(matrix: int, primaries: int, transfer: int, colour_range: int, width: int,
            height: int, yuv: bool = True) -> Colour:
    """The colour a file declares, with what players assume filled in where it is silent.

    Untagged HD (at least 1280 wide or 720 high) is BT.709; untagged SD is BT.601 (the 625-line
    PAL variant for 576-line video, else the 525-line one); an unknown range is limited.
    """
    hd = width >= 1280 or height >= 720
    sd_default = "bt470bg" if height == 576 else "smpte170m"
    default = "bt709" if hd else sd_default
    m = (MATRICES.get(matrix) or default) if yuv else "gbr"
    p, t, r = PRIMARIES.get(primaries), TRANSFERS.get(transfer), RANGES.get(colour_range)
    tagged = matrix in MATRICES or p is not None or t is not None
    return Colour(matrix=m, primaries=p or default, transfer=t or ("bt709" if hd else "smpte170m"),
                  range=r or ("tv" if yuv else "pc"), tagged=tagged)


def output_colour(source: Colour, hdr: str = "tonemap") -> Colour:
    """The colour the output is written and tagged with: the input's, or SDR BT.709 for HDR
    input that is tone-mapped."""
    if source.tone_mapped(hdr):
        return SDR_BT709
    if source.matrix not in _SCALE_MATRIX:  # RGB or YCgCo sources: write standard YUV
        return Colour("bt709", source.primaries, source.transfer, "tv")
    return source


def to_rgb_filters(source: Colour, width: int, height: int, hdr: str = "tonemap") -> list[str]:
    """ffmpeg filters taking decoded frames of ``source`` colour to RGB24 at width x height,
    read with the input's own matrix and range (and tone-mapped first when HDR)."""
    filters = []
    matrix, colour_range = source.matrix, source.range
    if source.tone_mapped(hdr):
        filters += tonemap_filters(source)
        matrix, colour_range = "bt709", "tv"
    scale = f"scale={width}:{height}:flags=area:out_range=pc"
    if matrix in _SCALE_MATRIX:
        scale += f":in_color_matrix={_SCALE_MATRIX[matrix]}:in_range={colour_range}"
    return filters + [scale, "format=rgb24"]


def tonemap_filters(source: Colour) -> list[str]:
    """HDR (PQ/HLG, BT.2020) -> SDR BT.709 limited-range YUV: linearise, convert primaries,
    compress highlights with Hable's curve (keeps mid-tones and detail in highlights), re-encode
    with the BT.709 transfer."""
    zin = (f"tin={_ZSCALE_TRANSFER[source.transfer]}"
           f":min={_ZSCALE_MATRIX.get(source.matrix, '2020_ncl')}"
           f":pin={'2020' if source.primaries == 'bt2020' else '709'}"
           f":rin={'full' if source.range == 'pc' else 'limited'}")
    return [f"zscale={zin}:t=linear:npl=100", "format=gbrpf32le", "zscale=p=709",
            "tonemap=tonemap=hable:desat=0", "zscale=t=709:m=709:r=limited", "format=yuv444p"]


def from_rgb_filters(target: Colour, pix_fmt: str) -> list[str]:
    """ffmpeg filters taking RGB24 frames to ``pix_fmt`` with ``target``'s matrix and range,
    and tagging the frames (which the encoder writes into the stream) with all of ``target``."""
    return [f"scale=in_range=pc:out_color_matrix={_SCALE_MATRIX[target.matrix]}"
            f":out_range={target.range}", f"format={pix_fmt}", tag_filter(target)]


def tag_filter(target: Colour) -> str:
    """The ffmpeg filter that tags frames with ``target``'s colours, which the encoder writes
    into the stream."""
    return "setparams=" + ":".join(f"{k}={v}" for k, v in target.output_params().items())
