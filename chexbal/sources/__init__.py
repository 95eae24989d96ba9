"""Where images come from: the embedded phantom renderer or a real CheXpert download.

Each source gives a table (`Path`, `patient`, raw CheXpert label columns with 1/0/-1/blank) and a
function that turns a block of those rows into uint8 images of a given size.
"""
