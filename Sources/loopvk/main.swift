print("loopvk")
