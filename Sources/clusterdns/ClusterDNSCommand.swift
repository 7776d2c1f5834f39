import ArgumentParser

@main
struct ClusterDNSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clusterdns",
        abstract: "An embeddable DNS and service-discovery server for Kubernetes-style clusters.",
        subcommands: [Serve.self, CheckZone.self, Validate.self, Apply.self, Delete.self, Get.self, Plan.self],
        defaultSubcommand: Serve.self
    )
}
