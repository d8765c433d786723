"""Case-based explanations of a prototype model (paper Figure 3), the prototype gallery per FPN level
(Figure 5) and the static HTML report that shows them.

Rooms: `cases` chooses test cases and computes each prototype's contribution; `text` words captions and
numbers; `drawing` holds the shared panel primitives; `figures` lays out one case; `gallery` lays out the
prototypes of one level; `html` writes index.html; `single` crops and explains one new image.
"""
