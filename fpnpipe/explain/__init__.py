"""Case-based explanations of a prototype model (paper Figure 3), the prototype gallery per FPN level
(Figure 5) and the static HTML report that shows them.

Rooms: `cases` chooses test cases and computes each prototype's contribution; `text` words captions and
numbers; `drawing` holds the shared panel primitives of the matplotlib figures and `panels` the pixel-drawn
ones (strips, prototype entries); `figures` lays out one case; `gallery` lays out the prototypes of one level;
`browse` writes every test crop's strip, maps and mammogram location; `prototype_entries` one entry per
prototype; `plots` renders the DVC plots as PNG; `html` writes index.html; `report` puts it all together;
`arguments` checks explain-image's arguments (standard library only); `single` crops and explains one new
image.
"""
