#!/usr/bin/python3
"""Writes the README's example images from opencv-doc's digits.png (Debian's
opencv-doc). The digits come from the held-out split of the bundled digits model (it
never trained on them):

  seven.png                 a handwritten 7, white on black as the model was trained
  two.png                   a handwritten 2, white on black
  seven_black_on_white.png  the same 7 inverted, as a scan or a drawing app gives it:
                            the model was never shown dark digits on a light page

Usage: /usr/bin/python3 examples/images/make_examples.py
"""
import os

import cv2

HERE = os.path.dirname(os.path.abspath(__file__))
SHEET = "/usr/share/doc/opencv-doc/examples/data/digits.png"


def cell(sheet, index):
    row, column = divmod(index, 100)
    return sheet[row * 20:(row + 1) * 20, column * 20:(column + 1) * 20]


def main():
    sheet = cv2.imread(SHEET, cv2.IMREAD_GRAYSCALE)
    seven = cell(sheet, 3503)
    cv2.imwrite(os.path.join(HERE, "seven.png"), seven)
    cv2.imwrite(os.path.join(HERE, "two.png"), cell(sheet, 1000))
    cv2.imwrite(os.path.join(HERE, "seven_black_on_white.png"), 255 - seven)


if __name__ == "__main__":
    main()
