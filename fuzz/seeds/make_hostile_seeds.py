#!/usr/bin/python3
"""Writes the fuzz seeds for hostile inputs, derived from the digit images here:

  images/digit-motion-photo.jpg     digit.jpg followed by an MP4 box (a motion photo)
  images/digit-stray-marker.jpg     an out-of-sequence RST marker in the scan data
  images/digit-taller.jpg           a start-of-frame claiming 16 more rows
  images/digit-bad-crc.png          the IDAT chunk's CRC not matching its data
  images/digit-no-iend.png          digit.png without its IEND chunk
  images/digit-negative-width.bmp   digit.bmp with its width negated
  images/animated.webp              the start of an animated WebP (VP8X, ANIM)
  checkpoints/nested-lists.pt       torch.save layout, data.pkl 2000 lists deep
  checkpoints/self-containing.pt    torch.save layout, a list appended into itself

Usage: /usr/bin/python3 fuzz/seeds/make_hostile_seeds.py   (standard library only)
"""
import os
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, "images", name), "rb") as f:
        return f.read()


def write(folder, name, data):
    with open(os.path.join(HERE, folder, name), "wb") as f:
        f.write(data)


def torch_save_archive(pickle):
    """A zip laid out as torch.save writes it, holding `pickle` as data.pkl."""
    path = os.path.join(HERE, "checkpoints", ".tmp.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle)
        archive.writestr("archive/version", "3\n")
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def main():
    jpeg = read("digit.jpg")
    write("images", "digit-motion-photo.jpg",
          jpeg + struct.pack(">I", 24) + b"ftypmp42" + bytes(4) + b"mp42isom" + b"B" * 200)
    scan = jpeg.find(b"\xff\xda")
    middle = scan + (len(jpeg) - scan) // 2
    write("images", "digit-stray-marker.jpg", jpeg[:middle] + b"\xff\xd5" + jpeg[middle:])
    frame = jpeg.find(b"\xff\xc0")
    height = struct.unpack(">H", jpeg[frame + 5:frame + 7])[0] + 16
    write("images", "digit-taller.jpg",
          jpeg[:frame + 5] + struct.pack(">H", height) + jpeg[frame + 7:])

    png = read("digit.png")
    idat = png.find(b"IDAT")
    length = struct.unpack(">I", png[idat - 4:idat])[0]
    crc = idat + 4 + length
    write("images", "digit-bad-crc.png", png[:crc] + bytes([png[crc] ^ 0x55]) + png[crc + 1:])
    write("images", "digit-no-iend.png", png[:-12])

    bmp = read("digit.bmp")
    width = struct.unpack("<i", bmp[18:22])[0]
    write("images", "digit-negative-width.bmp", bmp[:18] + struct.pack("<i", -width) + bmp[22:])
    write("images", "animated.webp",
          b"RIFF" + struct.pack("<I", 0x100) + b"WEBPVP8X" + struct.pack("<I", 10) +
          b"\x02\x00\x00\x00" + b"\x0f\x00\x00\x0f\x00\x00" + b"ANIM" + struct.pack("<I", 6) +
          bytes(6))

    depth = 2000
    write("checkpoints", "nested-lists.pt",
          torch_save_archive(b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."))
    write("checkpoints", "self-containing.pt",
          torch_save_archive(b"\x80\x02]q\x00h\x00a."))


if __name__ == "__main__":
    main()
