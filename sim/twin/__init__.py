"""Street-scene digital twin written in the DeepVerse6G on-disk format.

world.py        static geometry (road, buildings, scatterers) and traffic (IDM car following)
propagation.py  geometric ray paths BS -> UE (LoS / diffraction, ground, walls, vehicles, diffuse)
camera.py       pinhole camera and painter's-algorithm renderer
writer.py       the DeepVerse6G files (.mat, .yaml, images)
generate.py     the loop that ties them together (`wmfm twin generate`)
show.py         top-down map beside the camera frame (`wmfm twin show`)
"""
