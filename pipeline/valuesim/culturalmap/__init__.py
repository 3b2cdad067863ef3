"""The Inglehart-Welzel cultural map (paper Figure 1), in one package.

Where what is (nothing is imported here, so each module loads only what it needs):

- ``inputs``: checks of the respondents the map reads, and weighted country means.
- ``transform``: fitting the map (ecological principal components) and projecting
  respondents or expected item values onto it (``IWTransform``, saved as transform.json).
- ``country_selection``: which countries the study uses (a list, or the convex hull).
- ``compute``: the map stage's computation (fit, score, place, select) and its outputs.
- ``expectations``: expected map-item values from simulated answer distributions.
- ``item_prompts``: the prompts that ask a method the map items (``map_answers.parquet``).
- ``positions``: where each method's answers place the selected countries.
- ``zones``: the published cultural zones, for colouring the picture.
- ``drawing``: the map as a picture, with model positions as overlays.
"""
