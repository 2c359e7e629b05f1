"""3D evaluation: Dice, IoU, HD95, ASSD, surface Dice, volume difference and identification rate."""
