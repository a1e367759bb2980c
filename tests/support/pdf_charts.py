"""What a reader of a report's PDF sees of its charts: each image's area rendered by
PDFium, and the share of it that is coloured (an empty chart is axes and white)."""

from __future__ import annotations

import numpy as np

# a chart with data has at least this share of coloured pixels in its area (the data is
# drawn in colour, axes and text in greys); an empty chart has almost none
MIN_COLOURED = 0.01


def chart_colour_shares(pdf: bytes) -> list[float]:
    """For each image on the PDF's pages, in order, the share of its rendered area whose
    pixels are coloured (saturated), as drawn by PDFium: what a reader sees."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    shares = []
    scale = 2.0
    try:
        for page in document:
            images = list(page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE]))
            if not images:
                continue
            height = page.get_height()
            bitmap = page.render(scale=scale).to_pil().convert("HSV")
            for image in images:
                left, bottom, right, top = image.get_bounds()
                box = (
                    int(left * scale),
                    int((height - top) * scale),
                    int(right * scale),
                    int((height - bottom) * scale),
                )
                hsv = np.asarray(bitmap.crop(box))
                coloured = (hsv[..., 1] > 60) & (hsv[..., 2] > 40)  # saturated, not black
                shares.append(float(coloured.mean()) if coloured.size else 0.0)
    finally:
        document.close()
    return shares
