def main(argv=None):
    import framediff.kernels
    print("ok")
